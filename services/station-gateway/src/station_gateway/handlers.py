"""Consumers: what the gateway learns from other services' events.

- ``station-gateway.registry``: stations, credentials, tariffs and commercial data, kept in the
  gateway's own tables (credentials for the handshake, prices for the display and limits).
- ``station-gateway.sessions``: session events become rows of ``station_commands`` in the same
  transaction as the inbox claim; the process holding the station's socket executes them
  (``gateway.Gateway.drain``), whichever process consumed the event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from plugpay_events.contracts.identity import StationCredentialSet, StationRegistered
from plugpay_events.contracts.pricing import StationCommercialsSet, TariffPublished
from plugpay_events.contracts.sessions import (
    SessionAbandoned,
    SessionAuthorized,
    SessionBilled,
    SessionCodeExpired,
    SessionCodeScanned,
    SessionCostCalculated,
    SessionDenied,
    SessionPriced,
    SessionStopRequested,
)
from plugpay_events.envelope import Envelope
from sqlalchemy.ext.asyncio import AsyncSession

from station_gateway import domain, service
from station_gateway.repository import Repository

# What each consumer acts on (``ConsumerSpec.transactional(handles=...)``): other events of its
# topics (users, meter-free session steps, our own events) pass without a transaction. A branch
# added below needs its class here.
REGISTRY_EVENTS = (
    StationRegistered,
    StationCredentialSet,
    TariffPublished,
    StationCommercialsSet,
)
SESSION_EVENTS = (
    SessionCodeScanned,
    SessionPriced,
    SessionAuthorized,
    SessionStopRequested,
    SessionDenied,
    SessionCostCalculated,
    SessionCodeExpired,
    SessionAbandoned,
    SessionBilled,
)


async def apply_registry_event(session: AsyncSession, envelope: Envelope) -> Sequence[Envelope]:
    event = envelope.event()
    repo = Repository(session)
    if isinstance(event, StationRegistered):
        await repo.upsert_station(
            event.station_id,
            organisation_id=event.organisation_id,
            name=event.name,
            connectors=[c.model_dump(mode="json") for c in event.connectors],
        )
    elif isinstance(event, StationCredentialSet):
        await repo.upsert_station(
            event.station_id,
            password_hash=event.password_hash,
            security_profile=event.security_profile,
        )
    elif isinstance(event, TariffPublished):
        await repo.put_tariff(
            event.tariff_key, event.tariff.model_dump(mode="json"), event.published_at
        )
    elif isinstance(event, StationCommercialsSet):
        await repo.upsert_station(
            event.station_id,
            time_zone=event.time_zone,
            tariff_key=event.tariff_key,
            connector_tariffs={str(k): v for k, v in event.connector_tariffs.items()},
            commercial_status=event.status,
        )
        await repo.notify_display(event.station_id)
    return ()


def session_event_handler(instance_id: str, instance_dead_after: timedelta):  # type: ignore[no-untyped-def]
    """The effect of ``station-gateway.sessions`` for this process."""

    async def apply(session: AsyncSession, envelope: Envelope) -> Sequence[Envelope]:
        if envelope.producer == service.PRODUCER:
            # Our own events come back on the topic. A limit stop queued its stop command in
            # the transaction that emitted it; queuing another here would stop twice.
            return ()
        event = envelope.event()
        repo = Repository(session)
        if isinstance(event, SessionCodeScanned):
            if event.guest:  # started as a DirectPayment on 2.1 (remote_start)
                await repo.mark_guest_session(
                    event.session_id,
                    event.station_id,
                    event.connector_id,
                    event.session_started_at,
                )
        elif isinstance(event, SessionPriced):
            await repo.upsert_session(
                event,
                event.priced_at,
                create={"state": "code_issued"},
                tariff=event.tariff.model_dump(mode="json"),
                time_zone=event.time_zone,
                user_id=event.user_id,
                free_of_charge=event.free_of_charge,
            )
            await repo.notify_display(event.station_id)
        elif isinstance(event, SessionAuthorized):
            await _authorized(session, event, envelope, instance_id, instance_dead_after)
        elif isinstance(event, SessionStopRequested):
            row = await repo.session_row(event.session_id, lock=True)
            if row is None or domain.step_refusal(row["state"], domain.SessionStep.REQUEST_STOP):
                return ()
            await repo.update_session(
                event.session_id,
                stop_requested_by=event.requested_by,
                stop_requested_at=event.requested_at,
            )
            await repo.add_command(
                row["station_id"], "stop", instance_id, session_id=event.session_id
            )
        elif isinstance(event, SessionDenied):
            await repo.upsert_session(
                event,
                event.denied_at,
                state="denied",
                denial_reason=event.reason,
                denial_message=event.message,
            )
            await repo.add_command(
                event.station_id,
                "show_denied",
                instance_id,
                session_id=event.session_id,
                payload={"reason": event.reason, "message": event.message},
            )
            await repo.notify_display(event.station_id)
        elif isinstance(event, SessionCostCalculated):
            row = await repo.session_row(event.session_id)
            await repo.update_session(
                event.session_id,
                final_cost_minor=event.total.amount_minor,
                currency=event.total.currency,
            )
            if row is not None:
                await repo.add_command(
                    row["station_id"],
                    "show_cost",
                    instance_id,
                    session_id=event.session_id,
                    payload={
                        # What billing will charge: never above the hold.
                        "amount_minor": domain.capped_cost(
                            event.total.amount_minor, row["hold_amount_minor"]
                        ),
                        "currency": event.total.currency,
                        "transaction_id": row["transaction_id"],
                    },
                )
                await repo.notify_display(row["station_id"])
        elif isinstance(event, SessionCodeExpired):
            row = await repo.session_row(event.session_id, lock=True)
            if row is not None and not domain.step_refusal(row["state"], domain.SessionStep.EXPIRE):
                await repo.update_session(event.session_id, state=domain.SessionState.EXPIRED.value)
                await repo.add_command(
                    event.station_id, "clear_display", instance_id, session_id=event.session_id
                )
                await repo.notify_display(event.station_id)
        elif isinstance(event, SessionAbandoned):
            row = await repo.session_row(event.session_id, lock=True)
            if row is not None and row["state"] in ("authorized", "starting"):
                await repo.update_session(
                    event.session_id, state="abandoned", denial_reason=event.reason
                )
                await repo.notify_display(event.station_id)
            elif row is not None and row["state"] == "charging":
                # The start came after session-svc gave up (its start timeout) and billing
                # voided the hold: nobody pays for this energy, so the station must stop.
                if row["stop_requested_at"] is None:
                    await repo.update_session(
                        event.session_id,
                        stop_requested_by="system",
                        stop_requested_at=event.abandoned_at,
                    )
                await repo.add_command(
                    row["station_id"], "stop", instance_id, session_id=event.session_id
                )
        elif isinstance(event, SessionBilled):
            row = await repo.session_row(event.session_id)
            if row is not None:
                await repo.notify_display(row["station_id"])
        return ()

    return apply


async def _authorized(
    session: AsyncSession,
    event: SessionAuthorized,
    envelope: Envelope,
    instance_id: str,
    instance_dead_after: timedelta,
) -> None:
    repo = Repository(session)
    # The connector first (as a new code does), then the row: one lock order, no deadlock.
    await repo.lock_connector(event.station_id, event.connector_id)
    existing = await repo.session_row(event.session_id, lock=True)
    if existing is not None and existing["state"] == "expired":
        # A newer code replaced this one (its scan raced the new code): it must not start.
        await service.abandon(
            session,
            event.session_id,
            "code_superseded",
            caused_by=envelope,
            from_states=("expired",),
        )
        return
    if existing is not None and existing["state"] not in ("code_issued", "authorized"):
        return  # already started, finished or refused: a replayed authorisation changes nothing
    previous: Mapping[Any, Any] = existing or {}
    await repo.upsert_session(
        event,
        event.authorized_at,
        state="authorized",
        authorized_at=event.authorized_at,
        start_deadline=event.start_deadline,
        user_id=event.user_id,
        limits=event.limits.model_dump(mode="json"),
        id_tag=previous.get("id_tag") or domain.new_id_tag(event.session_id),
        remote_start_id=previous.get("remote_start_id") or await repo.next_ocpp_id(),
        currency=event.hold_amount.currency,
        hold_amount_minor=event.hold_amount.amount_minor,
    )
    presence = await repo.presence(event.station_id)
    alive = (
        presence is not None
        and presence["connected"]
        and presence["online"]
        and presence["beat_at"] is not None
        and presence["beat_at"] > service.now_utc() - instance_dead_after
    )
    if not alive:
        await service.abandon(session, event.session_id, "station_offline", caused_by=envelope)
        return
    if any(
        other["session_id"] != event.session_id
        for other in await repo.connector_sessions(
            event.station_id, event.connector_id, ("authorized", "starting", "charging")
        )
    ):
        # Two authorised sessions on one connector would mean two remote starts there.
        await service.abandon(session, event.session_id, "connector_busy", caused_by=envelope)
        return
    await repo.add_command(event.station_id, "start", instance_id, session_id=event.session_id)
    await repo.notify_display(event.station_id)
