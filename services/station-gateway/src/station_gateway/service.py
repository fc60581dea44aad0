"""Use cases shared by the OCPP endpoint, the display endpoints and the consumers.

Each takes a database session inside the caller's transaction and writes its outgoing
events to the outbox in that same transaction; none commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args

from plugpay_events.contracts.sessions import (
    ChargingStarted,
    MeterClaim,
    MeterJudgement,
    MeterSample,
    MeterValuesReported,
    SessionAbandoned,
    SessionCodeExpired,
    SessionCodeIssued,
    SessionCompleted,
    SessionFlagged,
    SessionStopRequested,
)
from plugpay_events.contracts.stations import (
    ConnectorStatus,
    ConnectorStatusChanged,
    StationBooted,
    StationConnected,
    StationDisconnected,
    StationWentOffline,
)
from plugpay_events.envelope import Envelope, Event
from plugpay_events.outbox import Outbox
from plugpay_events.session_code import new_typed_code, sign_session_code
from plugpay_tariffs import Tariff, describe, usage_from_completion
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from station_gateway import domain, plausibility, web_payments
from station_gateway.domain import OcppVersion, Reading
from station_gateway.repository import Repository
from station_gateway.tables import outbox_tables

PRODUCER = "station-gateway"
_outbox = Outbox(outbox_tables)

# What the event contract admits; a station may report others (mapped to Unavailable).
CONNECTOR_STATUSES = frozenset(get_args(ConnectorStatus))


class GatewayRefusal(Exception):
    """A use case said no: ``reason`` is machine-readable."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def now_utc() -> datetime:
    return datetime.now(UTC)


async def emit(
    session: AsyncSession, *events: Event, caused_by: Envelope | None = None
) -> list[Envelope]:
    """Queue events in the outbox of the caller's transaction."""
    envelopes = [Envelope.wrap(e, producer=PRODUCER, caused_by=caused_by) for e in events]
    await _outbox.add(session, envelopes)
    return envelopes


@dataclass(frozen=True)
class IssuedCode:
    session_id: uuid.UUID
    connector_id: int
    qr_url: str
    code: str
    expires_at: datetime
    session_started_at: datetime

    def reply(self) -> dict[str, Any]:
        """The DataTransfer answer to RequestSessionCode."""
        return {
            "sessionId": str(self.session_id),
            "qr": self.qr_url,
            "code": self.code,
            "expiresAt": self.expires_at.isoformat().replace("+00:00", "Z"),
        }


@dataclass
class CodeIssuer:
    """Makes session codes with the MAC key the gateway shares with session-svc."""

    key: dict[str, Any]
    public_base_url: str
    lifetime: timedelta

    async def issue(
        self,
        session: AsyncSession,
        station_id: str,
        connector_id: int,
        *,
        reuse_open: bool = False,
        require_online: bool = False,
    ) -> IssuedCode:
        repo = Repository(session)
        station = await repo.station(station_id)
        if station is None:
            raise GatewayRefusal("station_unknown", "this station is not registered")
        known = {c["connector_id"] for c in station["connectors"]}
        if known and connector_id not in known:
            raise GatewayRefusal("connector_unavailable", f"no connector {connector_id}")
        if require_online:
            presence = await repo.presence(station_id)
            if presence is None or not presence["connected"] or not presence["online"]:
                raise GatewayRefusal("station_offline", "the station is offline")
        now = now_utc().replace(microsecond=0)
        await repo.lock_connector(station_id, connector_id)
        if reuse_open and (row := await repo.open_code(station_id, connector_id, now)):
            return _issued(row)
        if await web_payment_holds(session, station_id, connector_id, now):
            raise GatewayRefusal(
                "web_payment_in_progress", "someone is paying for this connector on their phone"
            )
        if await repo.session_in_progress(station_id, connector_id):
            # One session per connector: a code request (or a plug-in status) while a session
            # is authorised, starting or charging there would put a second driver on it.
            raise GatewayRefusal("connector_busy", "a session is in progress on this connector")
        await _retire_codes(session, station_id, connector_id, now)
        token, claims = sign_session_code(
            self.key,
            station_id=station_id,
            connector_id=connector_id,
            session_started_at=now,
            lifetime=self.lifetime,
        )
        session_id = claims.session_id  # derived from the code, so the code stays short
        qr_url = f"{self.public_base_url.rstrip('/')}/s/{token}"
        code = new_typed_code()
        await repo.insert_session(
            session_id=session_id,
            station_id=station_id,
            connector_id=connector_id,
            state="code_issued",
            code=code,
            token_id=claims.token_id,
            qr_url=qr_url,
            session_started_at=claims.session_started_at,
            expires_at=claims.expires_at,
        )
        await emit(
            session,
            SessionCodeIssued(
                session_id=session_id,
                station_id=station_id,
                connector_id=connector_id,
                session_started_at=claims.session_started_at,
                expires_at=claims.expires_at,
                code=code,
                qr_url=qr_url,
                token_id=claims.token_id,
            ),
        )
        await repo.notify_display(station_id)
        return IssuedCode(
            session_id, connector_id, qr_url, code, claims.expires_at, claims.session_started_at
        )


# -- ad hoc payment by dynamic QR code (OCPP 2.1 C25) -------------------------------------------


async def web_payment_holds(
    session: AsyncSession, station_id: str, connector_id: int, now: datetime
) -> bool:
    """Whether a payer who came from the station's dynamic code holds the connector: until the
    timeout, and only while that payer's code is still unused (a start ends it)."""
    repo = Repository(session)
    lock = await repo.web_payment_lock(station_id, connector_id)
    if lock is None or lock["until"] <= now:
        return False
    row = await repo.session_row(lock["session_id"])
    return row is not None and row["state"] == "code_issued" and row["expires_at"] > now


async def web_payment_terms(
    session: AsyncSession, station_id: str, validity_s: int, code_length: int
) -> web_payments.WebPaymentTerms:
    """The station's WebPaymentsCtrlr terms, made on first use and kept (a reboot keeps its
    secret, so a code shown just before it stays valid)."""
    repo = Repository(session)
    row = await repo.web_payment_terms(station_id)
    if row is None:
        await repo.add_web_payment_terms(
            station_id, web_payments.new_shared_secret(), validity_s, code_length
        )
        row = await repo.web_payment_terms(station_id)
        assert row is not None
    return web_payments.WebPaymentTerms(
        shared_secret=row["shared_secret"],
        validity_s=row["validity_s"],
        length=row["code_length"],
    )


async def web_payment_provisioned(session: AsyncSession, station_id: str) -> None:
    await Repository(session).web_payment_provisioned(station_id, now_utc())


async def open_web_payment(
    session: AsyncSession,
    issuer: CodeIssuer,
    station_id: str,
    connector_id: int,
    code: str,
    *,
    hold_for: timedelta,
) -> IssuedCode:
    """A payer opened the URL of a station's dynamic QR code: the code checked (TOTP v1, the
    current step ±1), then the connector's ordinary session code, held for this payer."""
    repo = Repository(session)
    row = await repo.web_payment_terms(station_id)
    terms = (
        web_payments.WebPaymentTerms(row["shared_secret"], row["validity_s"], row["code_length"])
        if row is not None and row["provisioned_at"] is not None
        else None
    )
    now = now_utc()
    if terms is None or not web_payments.code_is_valid(code, terms, now):
        # Nothing is issued, locked or started for a bad, stale or forged code.
        raise GatewayRefusal(
            "code_invalid", "this code is not valid any more: scan the charger's screen again"
        )
    # The open code is reused (the same payer reloading); the issuer refuses a busy connector.
    issued = await issuer.issue(
        session, station_id, connector_id, reuse_open=True, require_online=True
    )
    await repo.put_web_payment_lock(station_id, connector_id, issued.session_id, now + hold_for)
    # The station locks the EVSE meanwhile (NotifyWebPaymentStarted), sent on commit by
    # whichever gateway process holds its socket.
    await repo.add_command(
        station_id,
        "web_payment_started",
        "web_payment",
        session_id=issued.session_id,
        payload={"evse_id": connector_id, "timeout_s": int(hold_for.total_seconds())},
    )
    return issued


async def cancel_code(session: AsyncSession, station_id: str, session_id: uuid.UUID) -> RowMapping:
    """The driver pressed Cancel on the station's screen: the code is retired at once (its
    connector free for the next driver) and ``SessionCodeExpired`` tells session-svc, which
    refuses its scans from then on. A scan that got in first is authorised for a retired code
    and abandoned as ``code_superseded`` (billing voids its hold), never started."""
    repo = Repository(session)
    row = await repo.session_row(session_id, lock=True)
    if row is None or row["station_id"] != station_id:
        raise GatewayRefusal("session_unknown", "there is no such code on this station")
    if row["state"] != "code_issued":
        raise GatewayRefusal("code_in_use", "this code is no longer waiting; nothing to cancel")
    now = now_utc()
    await repo.update_session(session_id, state="expired", expires_at=now)
    await emit(
        session,
        SessionCodeExpired(
            session_id=session_id,
            station_id=station_id,
            connector_id=row["connector_id"],
            expired_at=now,
        ),
    )
    await repo.notify_display(station_id)
    return row


async def _retire_codes(
    session: AsyncSession, station_id: str, connector_id: int, now: datetime
) -> None:
    """One live code per connector: a new code retires the connector's older ones here, so a
    late authorisation of one of them is abandoned as ``code_superseded``. No event: whether an
    older code was scanned meanwhile is session-svc's to know (it refuses scans of a code older
    than the connector's newest), and an unscanned one expires on its own timer."""
    repo = Repository(session)
    for old in await repo.connector_sessions(station_id, connector_id, ("code_issued",)):
        await repo.update_session(old["session_id"], state="expired", expires_at=now)


def _issued(row: RowMapping) -> IssuedCode:
    return IssuedCode(
        row["session_id"],
        row["connector_id"],
        row["qr_url"],
        row["code"],
        row["expires_at"],
        row["session_started_at"],
    )


# -- presence -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PresenceChange:
    """A station's socket opened at this process (``version`` set) or closed (None)."""

    station_id: str
    connection_id: uuid.UUID
    at: datetime
    version: OcppVersion | None = None


async def presence_changed(
    session: AsyncSession, changes: Sequence[PresenceChange], *, instance_id: str
) -> list[bool]:
    """Sockets opened and closed at this process, a batch in one transaction (a reconnect
    storm is thousands of them); for each change whether its station has commands waiting.

    Opens are applied before closes: connections are never reused, so a close only releases
    the connection it names, whether it came before or after a newer open of its station.
    """
    repo = Repository(session)
    opened = {c.station_id: c for c in changes if c.version is not None}  # the newest wins
    await repo.claim_presences(
        instance_id,
        [(c.station_id, c.connection_id, c.version or "", c.at) for c in opened.values()],
    )
    closed = [c for c in changes if c.version is None]
    released = await repo.release_presences([(c.station_id, c.connection_id) for c in closed])
    await emit(
        session,
        *(
            StationConnected(
                station_id=c.station_id,
                ocpp_version=c.version,
                gateway_instance=instance_id,
                connected_at=c.at,
            )
            for c in opened.values()
            if c.version is not None
        ),
        *(
            StationDisconnected(
                station_id=c.station_id, gateway_instance=instance_id, disconnected_at=c.at
            )
            for c in closed
            if (c.station_id, c.connection_id) in released
        ),
    )
    await repo.notify_display(*dict.fromkeys([*opened, *(station for station, _ in released)]))
    waiting = set(await repo.stations_with_commands(list(opened)))
    return [c.version is not None and c.station_id in waiting for c in changes]


async def sweep_offline(
    session: AsyncSession, silence: timedelta, instance_dead: timedelta
) -> list[str]:
    now = now_utc()
    rows = await Repository(session).take_silent_stations(now - silence, now - instance_dead)
    await emit(
        session,
        *(
            StationWentOffline(station_id=r["station_id"], last_seen_at=r["last_seen_at"])
            for r in rows
        ),
    )
    for r in rows:
        await Repository(session).notify_display(r["station_id"])
    return [r["station_id"] for r in rows]


@dataclass(frozen=True)
class Boot:
    """A BootNotification: who the station says it is."""

    station_id: str
    vendor: str
    model: str
    firmware: str | None
    at: datetime


async def stations_booted(session: AsyncSession, boots: Sequence[Boot]) -> list[None]:
    """Store and publish boots (a batch in one transaction, as a reconnect storm brings them)."""
    newest = {b.station_id: b for b in boots}
    await Repository(session).record_boots(
        [(b.station_id, b.vendor, b.model, b.firmware, b.at) for b in newest.values()]
    )
    await emit(
        session,
        *(
            StationBooted(
                station_id=b.station_id,
                vendor=b.vendor,
                model=b.model,
                firmware_version=b.firmware,
                booted_at=b.at,
            )
            for b in boots
        ),
    )
    return [None] * len(boots)


@dataclass(frozen=True)
class StatusReport:
    """A StatusNotification: a connector's status at the station's time ``at``."""

    station_id: str
    connector_id: int
    status: str
    error_code: str | None
    at: datetime


async def connector_statuses_changed(
    session: AsyncSession, reports: Sequence[StatusReport]
) -> list[str | None]:
    """Store statuses (a batch in one transaction, in arrival order) and publish the changes;
    for each report, the status before it."""
    stored = [
        r if r.status in CONNECTOR_STATUSES else replace(r, status="Unavailable") for r in reports
    ]
    repo = Repository(session)
    previous = await repo.set_connector_statuses(
        [(r.station_id, r.connector_id, r.status, r.error_code, r.at) for r in stored]
    )
    changed = [r for r, before in zip(stored, previous, strict=True) if before != r.status]
    await emit(
        session,
        *(
            ConnectorStatusChanged(
                station_id=r.station_id,
                connector_id=r.connector_id,
                status=r.status,
                error_code=r.error_code if r.error_code not in (None, "NoError") else None,
                changed_at=r.at,
            )
            for r in changed
        ),
    )
    await repo.notify_display(*dict.fromkeys(r.station_id for r in changed))
    return previous


# -- transactions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StartResult:
    transaction_id: str
    session_id: uuid.UUID | None
    accepted: bool


async def _link_transaction(
    session: AsyncSession,
    row: RowMapping,
    transaction_id: str,
    meter_start_wh: int | None,
    started_at: datetime,
) -> None:
    """Bind the station's transaction to the session and announce ChargingStarted (once)."""
    repo = Repository(session)
    await repo.update_session(
        row["session_id"],
        state=domain.SessionState.CHARGING.value,
        transaction_id=transaction_id,
        meter_start_wh=meter_start_wh,
        meter_last_wh=meter_start_wh,
        started_at=started_at,
        start_received_at=now_utc(),
    )
    await emit(
        session,
        ChargingStarted(
            session_id=row["session_id"],
            station_id=row["station_id"],
            connector_id=row["connector_id"],
            transaction_id=transaction_id,
            meter_start_wh=meter_start_wh or 0,
            started_at=started_at,
        ),
    )
    await repo.notify_display(row["station_id"])


async def start_transaction_16(
    session: AsyncSession,
    station_id: str,
    connector_id: int,
    id_tag: str,
    meter_start_wh: int,
    started_at: datetime,
    start_timeout: timedelta | None = None,
) -> StartResult:
    """StartTransaction: the idTag names the session; a repeat gets the same transaction id;
    a start after the session's start deadline is refused (the session given up)."""
    repo = Repository(session)
    row = await repo.session_by(station_id=station_id, id_tag=id_tag)
    if row is None:
        return StartResult(str(await repo.next_ocpp_id()), None, accepted=False)
    if row["transaction_id"] is not None:
        return StartResult(row["transaction_id"], row["session_id"], accepted=True)
    row = await _unless_overdue(session, row, start_timeout)
    if domain.step_refusal(row["state"], domain.SessionStep.START_CHARGING) is not None:
        return StartResult(str(await repo.next_ocpp_id()), row["session_id"], accepted=False)
    transaction_id = str(await repo.next_ocpp_id())
    await _link_transaction(session, row, transaction_id, meter_start_wh, started_at)
    return StartResult(transaction_id, row["session_id"], accepted=True)


async def find_transaction_201(
    session: AsyncSession,
    station_id: str,
    transaction_id: str,
    remote_start_id: int | None,
    id_token: str | None,
) -> RowMapping | None:
    repo = Repository(session)
    row = await repo.session_by(station_id=station_id, transaction_id=transaction_id)
    if row is not None:
        return row
    if remote_start_id is not None:
        row = await repo.session_by(station_id=station_id, remote_start_id=remote_start_id)
    if row is None and id_token:
        row = await repo.session_by(station_id=station_id, id_tag=id_token)
    if row is None or row["transaction_id"] is not None:
        return None
    return row


async def id_token_accepted(
    session: AsyncSession, row: RowMapping, presented: Mapping[str, Any] | None
) -> bool:
    """A station's idToken for the session ``row`` (domain.id_token_accepted): a DirectPayment
    token only for a guest's session, and only with that session's tag."""
    if not presented or presented.get("type") != domain.DIRECT_PAYMENT:
        return True
    guest = await Repository(session).is_guest_session(row["session_id"])
    return domain.id_token_accepted(presented, row["id_tag"], guest=guest)


async def start_id_token(session: AsyncSession, row: RowMapping, *, version: str) -> dict[str, str]:
    """The idToken a remote start names (2.1: DirectPayment for a guest's session)."""
    guest = version == "2.1" and await Repository(session).is_guest_session(row["session_id"])
    return domain.start_id_token(row["id_tag"], direct_payment=guest)


async def _unless_overdue(
    session: AsyncSession, row: RowMapping, start_timeout: timedelta | None
) -> RowMapping:
    """The session as a start finds it under its connector's lock (the lock a new code and an
    authorisation take): given up first if its start deadline has passed, so a late start and
    the deadline never both win."""
    repo = Repository(session)
    await repo.lock_connector(row["station_id"], row["connector_id"])
    locked = await repo.session_row(row["session_id"], lock=True)
    assert locked is not None
    if domain.start_overdue(locked, start_timeout, now_utc()):
        await abandon(session, locked["session_id"], "start_timeout")
        locked = await repo.session_row(row["session_id"])
        assert locked is not None
    return locked


async def abandon_overdue_starts(session: AsyncSession, start_timeout: timedelta | None) -> int:
    """Give up the authorised sessions not started by their deadline (the sweeper)."""
    repo = Repository(session)
    given_up = 0
    for row in await repo.waiting_starts():
        if domain.start_overdue(row, start_timeout, now_utc()):
            row = await _unless_overdue(session, row, start_timeout)
            given_up += row["state"] == domain.SessionState.ABANDONED
    return given_up


async def link_transaction_201(
    session: AsyncSession,
    row: RowMapping,
    transaction_id: str,
    readings: Sequence[Reading],
    started_at: datetime,
    start_timeout: timedelta | None = None,
) -> bool:
    """Link an authorised session to the station's transaction; False if it may not start
    (a start after its start deadline gives the session up)."""
    row = await _unless_overdue(session, row, start_timeout)
    if domain.step_refusal(row["state"], domain.SessionStep.START_CHARGING) is not None:
        return False
    register = next((r.energy_wh for r in readings if r.energy_wh is not None), None)
    await _link_transaction(session, row, transaction_id, register, started_at)
    return True


@dataclass(frozen=True)
class MeterOutcome:
    session_id: uuid.UUID | None
    limit: str | None = None
    cost_so_far_minor: int | None = None
    energy_wh: int = 0
    currency: str | None = None


async def record_meter_values(
    session: AsyncSession,
    station_id: str,
    transaction_id: str,
    readings: Sequence[Reading],
    *,
    now: datetime | None = None,
) -> MeterOutcome:
    """Store readings (replays dedupe by timestamp), publish them, and check the limits."""
    repo = Repository(session)
    row = await repo.session_by(station_id=station_id, transaction_id=transaction_id)
    if row is None:
        return MeterOutcome(None)
    now = now or now_utc()
    session_id = row["session_id"]
    meter_start = row["meter_start_wh"]
    energy_readings = [r for r in readings if r.energy_wh is not None]
    if meter_start is None and energy_readings:
        meter_start = min(energy_readings, key=lambda r: r.sampled_at).energy_wh
        await repo.update_session(session_id, meter_start_wh=meter_start)
    await repo.add_samples(
        session_id,
        [
            {
                "sampled_at": r.sampled_at,
                "energy_wh": r.energy_wh,
                "power_w": r.power_w,
                "soc_percent": r.soc_percent,
            }
            for r in energy_readings
        ],
    )
    if energy_readings and row["state"] == "charging":
        await emit(
            session,
            MeterValuesReported(
                session_id=session_id,
                station_id=station_id,
                connector_id=row["connector_id"],
                transaction_id=transaction_id,
                samples=tuple(
                    MeterSample(
                        sampled_at=r.sampled_at, energy_wh=r.energy_wh or 0, power_w=r.power_w
                    )
                    for r in sorted(energy_readings, key=lambda r: r.sampled_at)
                ),
                soc_percent=next(
                    (r.soc_percent for r in reversed(readings) if r.soc_percent is not None), None
                ),
            ),
        )
    if row["state"] != "charging":
        return MeterOutcome(session_id)
    outcome = await evaluate_progress(session, row, now, meter_start=meter_start)
    await repo.notify_display(station_id)
    return outcome


async def evaluate_progress(
    session: AsyncSession,
    row: RowMapping,
    now: datetime,
    *,
    meter_start: int | None = None,
) -> MeterOutcome:
    """Energy, cost so far and any reached limit of a charging session; stores the progress."""
    repo = Repository(session)
    samples = [(s["sampled_at"], s["energy_wh"]) for s in await repo.samples(row["session_id"])]
    meter_start = meter_start if meter_start is not None else row["meter_start_wh"] or 0
    last = max(samples)[1] if samples else meter_start
    energy = max(0, last - meter_start)
    started_at = row["started_at"] or now
    cost = None
    currency = None
    if row["tariff"] and row["time_zone"]:
        tariff = Tariff.model_validate(row["tariff"])
        usage = domain.usage(started_at, meter_start, samples, max(now, started_at))
        # A free session (the station's access policy) costs nothing, whatever the tariff says.
        cost = 0 if row["free_of_charge"] else domain.cost_minor(tariff, usage, row["time_zone"])
        currency = tariff.currency
    await repo.update_session(
        row["session_id"], meter_last_wh=last, cost_so_far_minor=cost, currency=currency
    )
    limit = domain.reached_limit(
        row["limits"],
        energy_wh=energy,
        elapsed_s=(now - started_at).total_seconds(),
        cost_minor_so_far=cost,
    )
    return MeterOutcome(row["session_id"], limit, cost, energy, currency)


async def check_progress(
    session: AsyncSession, session_ids: Sequence[uuid.UUID], now: datetime
) -> list[MeterOutcome]:
    """The periodic limit check of some sessions: their rows locked and read again in one
    query, because a session may have ended since the caller listed it (its final cost must
    not be overwritten by a running one). Sessions no longer charging are left out."""
    rows = await Repository(session).lock_charging(session_ids)
    return [await evaluate_progress(session, row, now) for row in rows]


async def request_limit_stop(session: AsyncSession, session_id: uuid.UUID) -> bool:
    """Mark that the gateway stops a session at its limit; False if a stop was already asked."""
    repo = Repository(session)
    row = await repo.session_row(session_id, lock=True)
    if (
        row is None
        or row["stop_requested_at"] is not None
        or row["state"] != domain.SessionState.CHARGING
    ):
        return False
    now = now_utc()
    await repo.update_session(session_id, stop_requested_by="limit", stop_requested_at=now)
    await emit(
        session,
        SessionStopRequested(session_id=session_id, requested_by="limit", requested_at=now),
    )
    return True


# The connector's power when its registration does not say: the largest public DC chargers.
UNKNOWN_CONNECTOR_MAX_POWER_W = 400_000
# Our Boot and Heartbeat answers set a station's clock: a larger offset is not believed.
MAX_CLOCK_SKEW = timedelta(minutes=5)
# A simulated calendar (test stacks) is at most this far from ours.
SIMULATED_CLOCK_SKEW = timedelta(days=400)


def _max_power_w(station: RowMapping | None, connector_id: int) -> int:
    for connector in (station["connectors"] if station else None) or ():
        if connector.get("connector_id") == connector_id and connector.get("max_power_w"):
            return int(connector["max_power_w"])
    return UNKNOWN_CONNECTOR_MAX_POWER_W


async def judge_meter_evidence(
    session: AsyncSession,
    row: RowMapping,
    samples: Sequence[RowMapping],
    *,
    meter_stop_wh: int | None,
    ended_at: datetime,
    received_at: datetime,
    simulation: domain.Simulation = domain.REAL_STATIONS,
) -> tuple[plausibility.Judgement, MeterJudgement]:
    """The plausibility judgement of a transaction's evidence, and its form in the event."""
    repo = Repository(session)
    station = await repo.station(row["station_id"])
    if simulation.own_clocks:
        skew = SIMULATED_CLOCK_SKEW
    else:
        skew = min(await repo.station_clock_skew(row["station_id"]), MAX_CLOCK_SKEW)
    max_power_w = int(_max_power_w(station, row["connector_id"]) * simulation.meter_speedup)
    evidence = plausibility.MeterEvidence(
        max_power_w=max_power_w,
        # Rows from before the column existed: the code's issue, which precedes authorisation.
        authorized_at=row["authorized_at"] or row["session_started_at"],
        stop_received_at=received_at,
        started_at=row["started_at"] or ended_at,
        stopped_at=ended_at,
        meter_start_wh=row["meter_start_wh"],
        meter_stop_wh=meter_stop_wh,
        samples=tuple(
            plausibility.Sample(s["sampled_at"], s["energy_wh"], s["power_w"]) for s in samples
        ),
        clock_skew=skew,
        start_received_at=row["start_received_at"],
    )
    judgement = plausibility.judge(evidence)
    return judgement, MeterJudgement(
        outcome=judgement.outcome,
        reasons=tuple(str(r) for r in judgement.reasons),
        # plausibility.Claim has the contract's fields, by the same names.
        claimed=MeterClaim.model_validate(judgement.claimed, from_attributes=True),
        max_power_w=max_power_w,
        max_energy_wh=judgement.max_energy_wh,
        clock_skew_s=int(skew.total_seconds()),
    )


async def complete_transaction(
    session: AsyncSession,
    station_id: str,
    transaction_id: str,
    *,
    version: OcppVersion,
    meter_stop_wh: int | None,
    ended_at: datetime,
    reported_reason: str | None,
    readings: Sequence[Reading] = (),
    stop_reason: str | None = None,
    received_at: datetime | None = None,
    simulation: domain.Simulation = domain.REAL_STATIONS,
) -> uuid.UUID | None:
    """The station ended a transaction: SessionCompleted exactly once per transaction, with
    the meter evidence judged (``received_at``: when we learned of the end, default now)."""
    repo = Repository(session)
    row = await repo.session_by(station_id=station_id, transaction_id=transaction_id)
    if row is None:
        return None
    session_id: uuid.UUID = row["session_id"]
    if row["completed_at"] is not None:
        return session_id  # a repeat after a timeout or a reconnect: already done
    if readings:
        await record_meter_values(session, station_id, transaction_id, readings, now=ended_at)
        row = await repo.session_row(row["session_id"], lock=True)
        assert row is not None
    samples = await repo.samples(row["session_id"])
    judgement, verdict = await judge_meter_evidence(
        session,
        row,
        samples,
        meter_stop_wh=meter_stop_wh,
        ended_at=ended_at,
        received_at=received_at or now_utc(),
        simulation=simulation,
    )
    reason = stop_reason or domain.stop_reason(reported_reason, version, row["stop_requested_by"])
    await repo.update_session(
        row["session_id"],
        state=domain.SessionState.COMPLETED.value,
        meter_start_wh=judgement.meter_start_wh,
        meter_stop_wh=judgement.meter_stop_wh,
        meter_last_wh=judgement.meter_stop_wh,
        started_at=judgement.started_at,
        ended_at=judgement.ended_at,
        stop_reason=reason,
        completed_at=now_utc(),
        meter_judgement=verdict.model_dump(mode="json"),
    )
    # The billable values: what the station claimed only if the judgement accepted it.
    completion = SessionCompleted(
        session_id=row["session_id"],
        station_id=station_id,
        connector_id=row["connector_id"],
        transaction_id=transaction_id,
        meter_start_wh=judgement.meter_start_wh,
        meter_stop_wh=judgement.meter_stop_wh,
        energy_wh=judgement.energy_wh,
        started_at=judgement.started_at,
        charging_ended_at=judgement.charging_ended_at,
        ended_at=judgement.ended_at,
        stop_reason=reason,
        samples=tuple(
            MeterSample(sampled_at=s.at, energy_wh=s.register_wh, power_w=s.power_w)
            for s in judgement.samples
        ),
        judgement=verdict,
    )
    completed = await emit(session, completion)
    await repo.update_session(row["session_id"], cost_so_far_minor=_final_cost(row, completion))
    if judgement.outcome != "accepted":
        # After SessionCompleted on the session's key: billing knows the plausible part first.
        # A correction is flagged too, so operators see every claim that was not billed as made.
        await emit(
            session,
            SessionFlagged(
                session_id=row["session_id"],
                station_id=station_id,
                connector_id=row["connector_id"],
                transaction_id=transaction_id,
                judgement=verdict,
                billed_energy_wh=judgement.energy_wh,
                flagged_at=now_utc(),
            ),
            caused_by=completed[0],
        )
    await repo.notify_display(station_id)
    return session_id


def _final_cost(row: RowMapping, completed: SessionCompleted) -> int | None:
    """The cost of a completed session as pricing-svc will price it (the same snapshot, the
    same judged meter values, the same calculator) and billing will cap it (the hold); None
    without a tariff snapshot."""
    if not row["tariff"] or not row["time_zone"]:
        return None
    if row["free_of_charge"]:
        return 0
    try:
        usage = usage_from_completion(
            started_at=completed.started_at,
            charging_ended_at=completed.charging_ended_at,
            ended_at=completed.ended_at,
            meter_start_wh=completed.meter_start_wh,
            energy_wh=completed.energy_wh,
            samples=completed.samples,
        )
        cost = domain.cost_minor(Tariff.model_validate(row["tariff"]), usage, row["time_zone"])
    except ValueError:
        return None  # pricing-svc parks such a session for people; the station waits for it
    return domain.capped_cost(cost, row["hold_amount_minor"])


@dataclass(frozen=True)
class EndedCost:
    amount_minor: int
    currency: str


async def ended_cost(
    session: AsyncSession, station_id: str, transaction_id: str
) -> EndedCost | None:
    """The final cost of a transaction the station has ended, for its TransactionEvent Ended
    answer: pricing-svc's once it is known (a repeated Ended), else the gateway's own figure
    from the same snapshot; capped by the hold either way. None if it cannot be known."""
    row = await Repository(session).session_by(station_id=station_id, transaction_id=transaction_id)
    if row is None or row["completed_at"] is None or not row["currency"]:
        return None
    if row["final_cost_minor"] is not None:
        amount = domain.capped_cost(row["final_cost_minor"], row["hold_amount_minor"])
    elif row["cost_so_far_minor"] is not None and row["tariff"]:
        amount = row["cost_so_far_minor"]
    else:
        return None
    return EndedCost(amount, row["currency"])


async def end_lost_transaction(
    session: AsyncSession,
    session_id: uuid.UUID,
    reason: Literal["transaction_lost", "station_unreachable"] = "transaction_lost",
    *,
    simulation: domain.Simulation = domain.REAL_STATIONS,
) -> bool:
    """The station will never report the transaction's end (it reported the connector free
    without ending it, or it has been unreachable too long): complete it once,
    from the last reading we have and at its time, so the driver pays only for metered energy
    and the hold is settled instead of waiting forever."""
    repo = Repository(session)
    row = await repo.session_row(session_id, lock=True)
    if row is None or row["transaction_id"] is None:
        return False
    if domain.step_refusal(row["state"], domain.SessionStep.COMPLETE) is not None:
        return False
    samples = await repo.samples(session_id)
    last_reading_at = max((s["sampled_at"] for s in samples), default=row["started_at"])
    await complete_transaction(
        session,
        row["station_id"],
        row["transaction_id"],
        version="1.6",  # unused: the stop reason is given
        meter_stop_wh=None,  # the highest reading received
        ended_at=last_reading_at or now_utc(),
        reported_reason=None,
        stop_reason=reason,
        simulation=simulation,
    )
    return True


async def abandon(
    session: AsyncSession,
    session_id: uuid.UUID,
    reason: str,
    caused_by: Envelope | None = None,
    *,
    from_states: Sequence[str] = ("authorized", "starting"),
) -> bool:
    """The station could not start: SessionAbandoned once, so billing voids the hold."""
    repo = Repository(session)
    row = await repo.session_row(session_id, lock=True)
    if row is None or row["state"] not in from_states:
        return False
    await repo.update_session(session_id, state="abandoned", denial_reason=reason)
    await emit(
        session,
        SessionAbandoned(
            session_id=session_id,
            station_id=row["station_id"],
            connector_id=row["connector_id"],
            reason=reason,
            abandoned_at=now_utc(),
        ),
        caused_by=caused_by,
    )
    await repo.notify_display(row["station_id"])
    return True


# -- display --------------------------------------------------------------------------------


async def price_text(
    session: AsyncSession, station_id: str, connector_id: int, at: datetime
) -> str | None:
    """The price a session starting now pays, from the station's current tariff."""
    repo = Repository(session)
    station = await repo.station(station_id)
    if station is None or not station["time_zone"]:
        return None
    key = station["connector_tariffs"].get(str(connector_id)) or station["tariff_key"]
    data = await repo.tariff(key) if key else None
    if data is None:
        return None
    return describe(Tariff.model_validate(data), at, station["time_zone"]).text


CARD_REFUSED_NOTE = timedelta(seconds=60)
CARD_REFUSED_TEXT = (
    "This card is not accepted here. Pay with the Plugpay app: choose Pay with phone."
)


async def card_refused(session: AsyncSession, station_id: str) -> None:
    """A charging card we do not know was presented (Authorize answered Invalid)."""
    repo = Repository(session)
    await repo.card_refused(station_id, now_utc())
    await repo.notify_display(station_id)


_MONEY_REFUSALS = frozenset({"insufficient_funds", "payment_declined", "no_payment_method"})


def public_refusal(reason: str | None) -> str:
    """What the shared station screen says about a refused driver: never their money."""
    if reason in _MONEY_REFUSALS or reason == "account_unverified":
        return "Payment could not be arranged. Your phone shows why and what to do."
    if reason == "access_denied":
        return "This charger is not open to this account. Your phone shows more."
    if reason in ("station_offline", "station_rejected", "connector_unavailable"):
        return "The charger could not start. Please try again or use another connector."
    return "Charging could not start. Your phone shows why."


async def display_state(session: AsyncSession, station_id: str) -> dict[str, Any]:
    """What the station's screen shows: connectors and the latest session of each."""
    repo = Repository(session)
    station = await repo.station(station_id)
    presence = await repo.presence(station_id)
    statuses = await repo.connector_statuses(station_id)
    connectors = sorted(
        {c["connector_id"] for c in (station["connectors"] if station else [])} | set(statuses)
    )
    connectors = [c for c in connectors if c > 0] or [1]
    now = now_utc()
    latest: dict[int, dict[str, Any]] = {}
    for row in await repo.latest_sessions(station_id):
        if row["connector_id"] in latest:
            continue
        view = _session_view(row, now)
        view["price"] = (
            describe(Tariff.model_validate(row["tariff"]), now, row["time_zone"]).text
            if row["tariff"] and row["time_zone"]
            else await price_text(session, station_id, row["connector_id"], now)
        )
        latest[row["connector_id"]] = view
    return {
        "station_id": station_id,
        "name": station["name"] if station else station_id,
        "online": bool(presence and presence["connected"] and presence["online"]),
        # A card refused a moment ago: the screen tells the driver how to pay instead.
        "card_refused_until": (
            (presence["card_refused_at"] + CARD_REFUSED_NOTE).isoformat()
            if presence
            and presence["card_refused_at"]
            and presence["card_refused_at"] + CARD_REFUSED_NOTE > now
            else None
        ),
        "connectors": [
            {
                "connector_id": c,
                "status": statuses.get(c, "Unknown"),
                "session": latest.get(c),
                "price": await price_text(session, station_id, c, now),
            }
            for c in connectors
        ],
    }


async def operator_view(
    session: AsyncSession, station_rows: Sequence[RowMapping]
) -> list[dict[str, Any]]:
    """Operators' live view of their stations: link, last message, boot data, each
    connector's status and the session in progress on it."""
    now = now_utc()
    ids = [row["station_id"] for row in station_rows]
    presence, statuses, current = await Repository(session).live_status(ids, now)
    views = []
    for station in station_rows:
        station_id = station["station_id"]
        link = presence.get(station_id)
        reported = {row["connector_id"]: row for row in statuses.get(station_id, [])}
        registered = {c["connector_id"] for c in station["connectors"] or []}
        connectors = []
        for connector_id in sorted((registered | set(reported)) - {0}):
            status = reported.get(connector_id)
            row = current.get((station_id, connector_id))
            connectors.append(
                {
                    "connector_id": connector_id,
                    "status": status["status"] if status else "Unknown",
                    "error_code": _error_code(status),
                    "status_since": status["changed_at"] if status else None,
                    "session": None
                    if row is None
                    else {
                        **_session_view(row, now),
                        "started_at": row["started_at"],
                        "session_started_at": row["session_started_at"],
                    },
                }
            )
        whole = reported.get(0)
        views.append(
            {
                "station_id": station_id,
                "name": station["name"] or station_id,
                "organisation_id": station["organisation_id"],
                "online": bool(link and link["connected"] and link["online"]),
                "connected": bool(link and link["connected"]),
                "ocpp_version": link["ocpp_version"] if link else None,
                "connected_at": link["connected_at"] if link else None,
                "last_seen_at": link["last_seen_at"] if link else None,
                "vendor": station["vendor"],
                "model": station["model"],
                "firmware_version": station["firmware_version"],
                "booted_at": station["booted_at"],
                "station_status": whole["status"] if whole else None,
                "connectors": connectors,
            }
        )
    return views


def _error_code(status: RowMapping | None) -> str | None:
    code = status["error_code"] if status else None
    return None if code in (None, "", "NoError") else str(code)


def _session_view(row: RowMapping, now: datetime) -> dict[str, Any]:
    state = row["state"]
    if state == "code_issued" and row["expires_at"] and row["expires_at"] <= now:
        state = "expired"
    energy = None
    if row["meter_last_wh"] is not None and row["meter_start_wh"] is not None:
        energy = max(0, row["meter_last_wh"] - row["meter_start_wh"])
    return {
        "session_id": str(row["session_id"]),
        "state": state,
        "code": row["code"] if state == "code_issued" else None,
        "qr_url": row["qr_url"] if state == "code_issued" else None,
        "expires_at": row["expires_at"].isoformat() if row["expires_at"] else None,
        "energy_wh": energy,
        "cost_so_far_minor": row["cost_so_far_minor"],
        "final_cost_minor": row["final_cost_minor"],
        "currency": row["currency"],
        "stop_reason": row["stop_reason"],
        # The screen is public: a neutral line; the driver's phone has the reason and message.
        "refusal": public_refusal(row["denial_reason"]) if state == "denied" else None,
    }
