"""The only module with SQL: stations, presence, sessions, samples, commands, keys."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Executable, and_, bindparam, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from station_gateway.tables import (
    connector_status,
    gateway_instances,
    meter_samples,
    ocpp_ids,
    sessions,
    signing_keys,
    station_commands,
    station_presence,
    stations,
    tariffs,
    web_payment_locks,
    web_payment_terms,
)

COMMANDS_CHANNEL = "station_gateway_commands"
DISPLAY_CHANNEL = "station_gateway_display"

# The statements of every charging session, built once: building a statement and its cache key
# costs more CPU than running it (docs/performance.md).
_STATION = select(stations).where(stations.c.station_id == bindparam("station_id"))
_PRESENCE = (
    select(station_presence, gateway_instances.c.beat_at)
    .outerjoin(
        gateway_instances,
        gateway_instances.c.instance_id == station_presence.c.instance_id,
    )
    .where(station_presence.c.station_id == bindparam("station_id"))
)
_TOUCH_PRESENCE = text(
    "UPDATE station_presence p SET last_seen_at = v.seen_at, online = true"
    " FROM unnest(CAST(:ids AS text[]), CAST(:connections AS uuid[]),"
    " CAST(:times AS timestamptz[])) AS v(station_id, connection_id, seen_at)"
    " WHERE p.station_id = v.station_id AND p.connection_id = v.connection_id"
    " AND p.last_seen_at < v.seen_at"
)
_INSTANCE_BEAT = (
    insert(gateway_instances)
    .values(instance_id=bindparam("instance_id"))
    .on_conflict_do_update(
        index_elements=[gateway_instances.c.instance_id], set_={"beat_at": func.now()}
    )
)
# The CTE reads the rows as they were before the upsert (one snapshot for the whole
# statement), so each report learns what it replaced.
_SET_CONNECTOR_STATUSES = text(
    "WITH v AS (SELECT * FROM unnest(CAST(:stations AS text[]),"
    " CAST(:connectors AS int[]), CAST(:statuses AS text[]),"
    " CAST(:errors AS text[]), CAST(:times AS timestamptz[]))"
    " AS v(station_id, connector_id, status, error_code, changed_at)),"
    " previous AS (SELECT c.station_id, c.connector_id, c.status"
    " FROM connector_status c JOIN v USING (station_id, connector_id))"
    " INSERT INTO connector_status AS c"
    " (station_id, connector_id, status, error_code, changed_at, reported_at)"
    " SELECT station_id, connector_id, status, error_code, changed_at, now()"
    " FROM v ON CONFLICT (station_id, connector_id) DO UPDATE SET"
    " status = excluded.status, error_code = excluded.error_code,"
    " changed_at = excluded.changed_at, reported_at = excluded.reported_at"
    " RETURNING c.station_id, c.connector_id, (SELECT p.status FROM previous p"
    " WHERE p.station_id = c.station_id AND p.connector_id = c.connector_id)"
    " AS previous"
)
_CONNECTOR_STATUSES = select(connector_status.c.connector_id, connector_status.c.status).where(
    connector_status.c.station_id == bindparam("station_id")
)
_NEXT_OCPP_ID = select(ocpp_ids.next_value())
_INSERT_SESSION = insert(sessions)
_SESSION_BY_ID = select(sessions).where(sessions.c.session_id == bindparam("session_id"))
_SESSION_BY_ID_FOR_UPDATE = _SESSION_BY_ID.with_for_update()
_LOCK_CONNECTOR = text("SELECT pg_advisory_xact_lock(hashtext(:key))")
_CONNECTOR_SESSIONS_FOR_UPDATE = (
    select(sessions)
    .where(
        sessions.c.station_id == bindparam("station_id"),
        sessions.c.connector_id == bindparam("connector_id"),
        sessions.c.state.in_(bindparam("states", expanding=True)),
    )
    .order_by(sessions.c.created_at)
    .with_for_update()
)
_SESSION_IN_PROGRESS = (
    select(sessions.c.session_id)
    .where(
        sessions.c.station_id == bindparam("station_id"),
        sessions.c.connector_id == bindparam("connector_id"),
        sessions.c.state.in_(("authorized", "starting", "charging")),
    )
    .limit(1)
)
_WAITING_STARTS = select(sessions).where(
    sessions.c.state.in_(("authorized", "starting")),
    sessions.c.transaction_id.is_(None),
)
_CHARGING_SESSIONS_AT = select(sessions).where(
    sessions.c.station_id.in_(bindparam("station_ids", expanding=True)),
    sessions.c.state == "charging",
)
_CHARGING_SESSIONS_FOR_UPDATE = (
    select(sessions)
    .where(
        sessions.c.session_id.in_(bindparam("session_ids", expanding=True)),
        sessions.c.state == "charging",
    )
    .order_by(sessions.c.session_id)
    .with_for_update()
)
_IS_GUEST_SESSION = select(sessions.c.guest).where(sessions.c.session_id == bindparam("session_id"))
_ADD_SAMPLES = insert(meter_samples).on_conflict_do_nothing()
_ADD_COMMAND = insert(station_commands).returning(station_commands.c.id)
_STATIONS_WITH_COMMANDS = (
    select(station_commands.c.station_id)
    .where(
        station_commands.c.done_at.is_(None),
        station_commands.c.station_id.in_(bindparam("station_ids", expanding=True)),
    )
    .distinct()
)
_TAKE_COMMANDS = (
    update(station_commands)
    .where(
        station_commands.c.id.in_(
            select(station_commands.c.id)
            .where(
                station_commands.c.done_at.is_(None),
                station_commands.c.station_id.in_(bindparam("station_ids", expanding=True)),
            )
            .order_by(station_commands.c.id)
            .limit(100)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
    )
    .values(executed_by=bindparam("instance_id"), done_at=func.now())
    .returning(station_commands)
)
_FINISH_COMMAND = (
    update(station_commands)
    .where(station_commands.c.id == bindparam("command_id"))
    .values(result=bindparam("result"))
)
_NOTIFY = text("SELECT pg_notify(:c, :s)")
_NOTIFY_EACH = text("SELECT pg_notify(:c, s) FROM unnest(CAST(:ids AS text[])) AS s")
_WEB_PAYMENT_LOCK = select(web_payment_locks).where(
    web_payment_locks.c.station_id == bindparam("station_id"),
    web_payment_locks.c.connector_id == bindparam("connector_id"),
)

# Statements whose shape follows the columns a call names (the names come from code, so
# these hold one statement per call site's set of columns).
_SESSION_UPSERTS: dict[tuple[frozenset[str], frozenset[str]], Executable] = {}
_SESSION_UPDATES: dict[frozenset[str], Executable] = {}
_SESSIONS_BY: dict[tuple[tuple[tuple[str, bool], ...], bool], Executable] = {}


def _session_upsert(created: frozenset[str], updated: frozenset[str]) -> Executable:
    """Insert a session's row with ``created`` and ``updated``; on conflict set ``updated``."""
    stmt = _SESSION_UPSERTS.get((created, updated))
    if stmt is None:
        inserted = ["session_id", "station_id", "connector_id", "session_started_at"]
        inserted += sorted(created | updated)
        stmt = (
            insert(sessions)
            .values({name: bindparam(name) for name in inserted})
            .on_conflict_do_update(
                index_elements=[sessions.c.session_id],
                set_={
                    **{name: bindparam(name) for name in sorted(updated)},
                    "updated_at": func.now(),
                },
            )
        )
        _SESSION_UPSERTS[(created, updated)] = stmt
    return stmt


def _session_update(names: frozenset[str]) -> Executable:
    """Set these columns of the session ``b_session_id`` (a column's name would be taken
    for the SET clause)."""
    stmt = _SESSION_UPDATES.get(names)
    if stmt is None:
        stmt = (
            update(sessions)
            .where(sessions.c.session_id == bindparam("b_session_id"))
            .values({**{name: bindparam(name) for name in sorted(names)}, "updated_at": func.now()})
        )
        _SESSION_UPDATES[names] = stmt
    return stmt


def _session_by(where: Mapping[str, Any], lock: bool) -> Executable:
    """The first session matching ``where`` (a None value matches NULL, as ``==`` does)."""
    key = (tuple(sorted((name, value is None) for name, value in where.items())), lock)
    stmt = _SESSIONS_BY.get(key)
    if stmt is None:
        query = (
            select(sessions)
            .where(
                *(
                    sessions.c[name].is_(None) if null else sessions.c[name] == bindparam(name)
                    for name, null in key[0]
                )
            )
            .limit(1)
        )
        stmt = query.with_for_update() if lock else query
        _SESSIONS_BY[key] = stmt
    return stmt


class SessionAtConnector(Protocol):
    """Any session event that names the station and connector (the first may make the row)."""

    @property
    def session_id(self) -> uuid.UUID: ...
    @property
    def station_id(self) -> str: ...
    @property
    def connector_id(self) -> int: ...


class Repository:
    """Queries of one unit of work; the caller owns the transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # -- stations and tariffs (learned from events) --------------------------------------

    async def upsert_station(self, station_id: str, **values: Any) -> None:
        stmt = insert(stations).values(station_id=station_id, **values)
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[stations.c.station_id],
                set_={**values, "updated_at": func.now()},
            )
        )

    async def record_boots(
        self, boots: Sequence[tuple[str, str, str, str | None, datetime]]
    ) -> None:
        """Stations booted (station, vendor, model, firmware, when; one row per station)."""
        if not boots:
            return
        rows = [
            {
                "station_id": station_id,
                "vendor": vendor,
                "model": model,
                "firmware_version": firmware,
                "booted_at": at,
            }
            for station_id, vendor, model, firmware, at in boots
        ]
        stmt = insert(stations).values(rows)
        booted = {name: stmt.excluded[name] for name in rows[0] if name != "station_id"}
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[stations.c.station_id], set_={**booted, "updated_at": func.now()}
            )
        )

    async def station(self, station_id: str) -> RowMapping | None:
        result = await self.session.execute(_STATION, {"station_id": station_id})
        return result.mappings().first()

    async def any_password_hash(self) -> str | None:
        """One station's stored credential hash (for its parameters), if any is registered."""
        found: str | None = await self.session.scalar(
            select(stations.c.password_hash).where(stations.c.password_hash.is_not(None)).limit(1)
        )
        return found

    async def stations_of(self, organisation_id: uuid.UUID) -> list[RowMapping]:
        result = await self.session.execute(
            select(stations)
            .where(stations.c.organisation_id == organisation_id)
            .order_by(stations.c.station_id)
        )
        return list(result.mappings().all())

    async def live_status(
        self, station_ids: Sequence[str], now: datetime
    ) -> tuple[
        dict[str, RowMapping], dict[str, list[RowMapping]], dict[tuple[str, int], RowMapping]
    ]:
        """Presence, connector statuses and the session in progress on each connector (or
        the open code waiting for a driver) of these stations, three queries in all."""
        if not station_ids:
            return {}, {}, {}
        presence = await self.session.execute(
            select(station_presence).where(station_presence.c.station_id.in_(station_ids))
        )
        connectors = await self.session.execute(
            select(connector_status)
            .where(connector_status.c.station_id.in_(station_ids))
            .order_by(connector_status.c.station_id, connector_status.c.connector_id)
        )
        current = await self.session.execute(
            select(sessions)
            .where(
                sessions.c.station_id.in_(station_ids),
                or_(
                    sessions.c.state.in_(("authorized", "starting", "charging")),
                    and_(sessions.c.state == "code_issued", sessions.c.expires_at > now),
                ),
            )
            .order_by(sessions.c.created_at)
        )
        statuses: dict[str, list[RowMapping]] = {}
        for row in connectors.mappings():
            statuses.setdefault(row["station_id"], []).append(row)
        in_progress: dict[tuple[str, int], RowMapping] = {}
        for row in current.mappings():
            # A session being started or charging wins over a code waiting for a driver; among
            # equals the newest (rows come oldest first).
            key = (row["station_id"], row["connector_id"])
            held = in_progress.get(key)
            if held is None or row["state"] != "code_issued" or held["state"] == "code_issued":
                in_progress[key] = row
        return (
            {row["station_id"]: row for row in presence.mappings()},
            statuses,
            in_progress,
        )

    async def put_tariff(self, tariff_key: str, tariff: dict[str, Any], at: datetime) -> None:
        stmt = insert(tariffs).values(tariff_key=tariff_key, tariff=tariff, published_at=at)
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[tariffs.c.tariff_key],
                set_={"tariff": tariff, "published_at": at},
                where=tariffs.c.published_at <= at,
            )
        )

    async def tariff(self, tariff_key: str) -> dict[str, Any] | None:
        value = await self.session.scalar(
            select(tariffs.c.tariff).where(tariffs.c.tariff_key == tariff_key)
        )
        return dict(value) if value is not None else None

    # -- presence ------------------------------------------------------------------------

    async def claim_presences(
        self, instance_id: str, opened: Sequence[tuple[str, uuid.UUID, str, datetime]]
    ) -> None:
        """Sockets opened at this process (station, connection, OCPP version, when; one row
        per station): each station's presence now names this process and connection."""
        if not opened:
            return
        rows = [
            {
                "station_id": station_id,
                "instance_id": instance_id,
                "connection_id": connection_id,
                "ocpp_version": version,
                "connected": True,
                "online": True,
                "connected_at": at,
                "last_seen_at": at,
            }
            for station_id, connection_id, version, at in opened
        ]
        stmt = insert(station_presence).values(rows)
        claimed = {name: stmt.excluded[name] for name in rows[0] if name != "station_id"}
        await self.session.execute(
            stmt.on_conflict_do_update(index_elements=[station_presence.c.station_id], set_=claimed)
        )

    async def release_presences(
        self, closed: Sequence[tuple[str, uuid.UUID]]
    ) -> set[tuple[str, uuid.UUID]]:
        """Sockets closed (station, connection): marked disconnected where that connection
        still owns the station (a newer one may have claimed it); the pairs released."""
        if not closed:
            return set()
        ids, connections = zip(*closed, strict=True)
        result = await self.session.execute(
            text(
                "UPDATE station_presence p SET connected = false"
                " FROM unnest(CAST(:ids AS text[]), CAST(:connections AS uuid[]))"
                " AS v(station_id, connection_id)"
                " WHERE p.station_id = v.station_id AND p.connection_id = v.connection_id"
                " AND p.connected RETURNING p.station_id, p.connection_id"
            ),
            {"ids": list(ids), "connections": list(connections)},
        )
        return {(row.station_id, row.connection_id) for row in result}

    async def touch_presence(self, seen: Sequence[tuple[str, uuid.UUID, datetime]]) -> None:
        """Record signs of life (station, connection, when) in one statement."""
        if not seen:
            return
        ids, connections, times = zip(*seen, strict=True)
        await self.session.execute(
            _TOUCH_PRESENCE,
            {"ids": list(ids), "connections": list(connections), "times": list(times)},
        )

    async def presence(self, station_id: str) -> RowMapping | None:
        result = await self.session.execute(_PRESENCE, {"station_id": station_id})
        return result.mappings().first()

    async def take_silent_stations(
        self, silent_before: datetime, dead_before: datetime
    ) -> list[RowMapping]:
        """Online stations not heard of since ``silent_before`` (or whose gateway died):
        marked offline here, under row locks so one gateway process reports each once."""
        candidates = (
            select(station_presence.c.station_id)
            .outerjoin(
                gateway_instances,
                gateway_instances.c.instance_id == station_presence.c.instance_id,
            )
            .where(
                station_presence.c.online.is_(True),
                or_(
                    station_presence.c.last_seen_at < silent_before,
                    gateway_instances.c.beat_at.is_(None),
                    gateway_instances.c.beat_at < dead_before,
                ),
            )
            .with_for_update(of=station_presence, skip_locked=True)
        )
        result = await self.session.execute(
            update(station_presence)
            .where(station_presence.c.station_id.in_(candidates.scalar_subquery()))
            .values(online=False)
            .returning(station_presence.c.station_id, station_presence.c.last_seen_at)
        )
        return list(result.mappings().all())

    async def instance_beat(self, instance_id: str) -> None:
        await self.session.execute(_INSTANCE_BEAT, {"instance_id": instance_id})

    async def set_connector_statuses(
        self, reports: Sequence[tuple[str, int, str, str | None, datetime]]
    ) -> list[str | None]:
        """Store statuses (station, connector, status, error code, the station's time), in
        order; for each, the status it replaced. One statement per round of distinct
        connectors: a connector reported twice in a batch goes in the next round."""
        previous: list[str | None] = [None] * len(reports)
        pending = list(enumerate(reports))
        while pending:
            batch: list[tuple[int, tuple[str, int, str, str | None, datetime]]] = []
            later: list[tuple[int, tuple[str, int, str, str | None, datetime]]] = []
            keys: set[tuple[str, int]] = set()
            for index, report in pending:
                key = (report[0], report[1])
                (later if key in keys else batch).append((index, report))
                keys.add(key)
            stations, connectors, statuses, errors, times = zip(*(r for _, r in batch), strict=True)
            result = await self.session.execute(
                _SET_CONNECTOR_STATUSES,
                {
                    "stations": list(stations),
                    "connectors": list(connectors),
                    "statuses": list(statuses),
                    "errors": list(errors),
                    "times": list(times),
                },
            )
            before = {(r.station_id, r.connector_id): r.previous for r in result}
            for index, report in batch:
                previous[index] = before[(report[0], report[1])]
            pending = later
        return previous

    async def station_clock_skew(self, station_id: str) -> timedelta:
        """How far the station's clock was off ours at its latest status message."""
        row = (
            await self.session.execute(
                select(connector_status.c.changed_at, connector_status.c.reported_at)
                .where(connector_status.c.station_id == station_id)
                .order_by(connector_status.c.reported_at.desc())
                .limit(1)
            )
        ).first()
        return abs(row.changed_at - row.reported_at) if row is not None else timedelta(0)

    async def connector_statuses(self, station_id: str) -> dict[int, str]:
        result = await self.session.execute(_CONNECTOR_STATUSES, {"station_id": station_id})
        return {row.connector_id: row.status for row in result}

    # -- sessions --------------------------------------------------------------------------

    async def next_ocpp_id(self) -> int:
        return int(await self.session.scalar(_NEXT_OCPP_ID) or 0)

    async def insert_session(self, **values: Any) -> None:
        await self.session.execute(_INSERT_SESSION, values)

    async def upsert_session(
        self,
        about: SessionAtConnector,
        started_at: datetime,
        *,
        create: Mapping[str, Any] | None = None,
        **values: Any,
    ) -> None:
        """Set a session's ``values``; the first event heard of it makes the row (with
        ``create``, the columns only that insert sets)."""
        created = create or {}
        await self.session.execute(
            _session_upsert(frozenset(created), frozenset(values)),
            {
                "session_id": about.session_id,
                "station_id": about.station_id,
                "connector_id": about.connector_id,
                "session_started_at": started_at,
                **created,
                **values,
            },
        )

    async def session_row(self, session_id: uuid.UUID, *, lock: bool = False) -> RowMapping | None:
        query = _SESSION_BY_ID_FOR_UPDATE if lock else _SESSION_BY_ID
        return (await self.session.execute(query, {"session_id": session_id})).mappings().first()

    async def session_by(self, *, lock: bool = True, **where: Any) -> RowMapping | None:
        return (await self.session.execute(_session_by(where, lock), where)).mappings().first()

    async def open_code(
        self, station_id: str, connector_id: int, now: datetime
    ) -> RowMapping | None:
        result = await self.session.execute(
            select(sessions)
            .where(
                sessions.c.station_id == station_id,
                sessions.c.connector_id == connector_id,
                sessions.c.state == "code_issued",
                sessions.c.expires_at > now,
            )
            .order_by(sessions.c.created_at.desc())
            .limit(1)
        )
        return result.mappings().first()

    async def lock_connector(self, station_id: str, connector_id: int) -> None:
        """Serialise the decisions about one connector (a new code, an authorisation, a start)
        across processes until this transaction ends: one live code and one session at a time."""
        await self.session.execute(
            _LOCK_CONNECTOR,
            {"key": f"connector:{station_id}:{connector_id}"},
        )

    async def connector_sessions(
        self, station_id: str, connector_id: int, states: Sequence[str]
    ) -> list[RowMapping]:
        """The connector's sessions in ``states``, oldest first, locked."""
        result = await self.session.execute(
            _CONNECTOR_SESSIONS_FOR_UPDATE,
            {"station_id": station_id, "connector_id": connector_id, "states": list(states)},
        )
        return list(result.mappings().all())

    async def unreachable_transactions(self, last_seen_before: datetime) -> list[RowMapping]:
        """Charging sessions of stations not seen since ``last_seen_before`` (or never)."""
        seen_since = (
            select(station_presence.c.station_id)
            .where(
                station_presence.c.station_id == sessions.c.station_id,
                station_presence.c.last_seen_at >= last_seen_before,
            )
            .exists()
        )
        result = await self.session.execute(
            select(sessions).where(
                sessions.c.state == "charging",
                sessions.c.started_at < last_seen_before,
                ~seen_since,
            )
        )
        return list(result.mappings().all())

    async def session_in_progress(self, station_id: str, connector_id: int) -> bool:
        """Whether a session on the connector is authorised, starting or charging."""
        found = await self.session.scalar(
            _SESSION_IN_PROGRESS, {"station_id": station_id, "connector_id": connector_id}
        )
        return found is not None

    async def update_session(self, session_id: uuid.UUID, **values: Any) -> None:
        await self.session.execute(
            _session_update(frozenset(values)), {**values, "b_session_id": session_id}
        )

    async def latest_sessions(self, station_id: str, limit: int = 20) -> list[RowMapping]:
        result = await self.session.execute(
            select(sessions)
            .where(sessions.c.station_id == station_id)
            .order_by(sessions.c.created_at.desc())
            .limit(limit)
        )
        return list(result.mappings().all())

    async def waiting_starts(self) -> list[RowMapping]:
        """Sessions authorised (or with a start command accepted) and not started yet."""
        result = await self.session.execute(_WAITING_STARTS)
        return list(result.mappings())

    async def lost_transactions(self, reported_free_before: datetime) -> list[RowMapping]:
        """Charging sessions whose connector the station reported Available after the start
        (before ``reported_free_before``) and sent no reading for since."""
        reading_since = (
            select(meter_samples.c.session_id)
            .where(
                meter_samples.c.session_id == sessions.c.session_id,
                meter_samples.c.sampled_at > connector_status.c.changed_at,
            )
            .exists()
        )
        result = await self.session.execute(
            select(sessions)
            .join(
                connector_status,
                and_(
                    connector_status.c.station_id == sessions.c.station_id,
                    connector_status.c.connector_id == sessions.c.connector_id,
                ),
            )
            .where(
                sessions.c.state == "charging",
                connector_status.c.status == "Available",
                connector_status.c.changed_at > sessions.c.started_at,
                connector_status.c.reported_at < reported_free_before,
                ~reading_since,
            )
        )
        return list(result.mappings().all())

    async def charging_sessions(self, station_ids: Sequence[str]) -> list[RowMapping]:
        if not station_ids:
            return []
        result = await self.session.execute(
            _CHARGING_SESSIONS_AT, {"station_ids": list(station_ids)}
        )
        return list(result.mappings().all())

    async def lock_charging(self, session_ids: Sequence[uuid.UUID]) -> list[RowMapping]:
        """Those of ``session_ids`` still charging, locked (in id order: no lock cycles)."""
        result = await self.session.execute(
            _CHARGING_SESSIONS_FOR_UPDATE, {"session_ids": list(session_ids)}
        )
        return list(result.mappings().all())

    async def add_samples(self, session_id: uuid.UUID, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            await self.session.execute(
                _ADD_SAMPLES, [{"session_id": session_id, **r} for r in rows]
            )

    async def samples(self, session_id: uuid.UUID, limit: int | None = None) -> list[RowMapping]:
        result = await self.session.execute(
            select(meter_samples)
            .where(meter_samples.c.session_id == session_id)
            .order_by(meter_samples.c.sampled_at)
            .limit(limit)
        )
        return list(result.mappings().all())

    # -- commands ------------------------------------------------------------------------

    async def add_command(
        self,
        station_id: str,
        kind: str,
        created_by: str,
        *,
        session_id: uuid.UUID | None = None,
        payload: dict[str, Any] | None = None,
    ) -> int:
        command_id = await self.session.scalar(
            _ADD_COMMAND,
            {
                "station_id": station_id,
                "session_id": session_id,
                "kind": kind,
                "payload": payload or {},
                "created_by": created_by,
            },
        )
        # Delivered on commit: wakes the process holding the station's socket.
        await self.session.execute(_NOTIFY, {"c": COMMANDS_CHANNEL, "s": station_id})
        return int(command_id or 0)

    async def stations_with_commands(self, station_ids: Sequence[str]) -> list[str]:
        """Which of these stations have commands waiting (one query for all of them)."""
        if not station_ids:
            return []
        result = await self.session.execute(
            _STATIONS_WITH_COMMANDS, {"station_ids": list(station_ids)}
        )
        return list(result.scalars().all())

    async def take_commands(self, station_ids: Sequence[str], instance_id: str) -> list[RowMapping]:
        """Pending commands for stations this process holds, claimed under row locks."""
        if not station_ids:
            return []
        result = await self.session.execute(
            _TAKE_COMMANDS, {"station_ids": list(station_ids), "instance_id": instance_id}
        )
        return sorted(result.mappings().all(), key=lambda r: r["id"])

    async def finish_command(self, command_id: int, result: dict[str, Any]) -> None:
        await self.session.execute(_FINISH_COMMAND, {"command_id": command_id, "result": result})

    async def command(self, command_id: int) -> RowMapping | None:
        result = await self.session.execute(
            select(station_commands).where(station_commands.c.id == command_id)
        )
        return result.mappings().first()

    async def card_refused(self, station_id: str, at: datetime) -> None:
        await self.session.execute(
            update(station_presence)
            .where(station_presence.c.station_id == station_id)
            .values(card_refused_at=at)
        )

    async def notify_display(self, *station_ids: str) -> None:
        """Wake the display streams of these stations when the transaction commits."""
        if len(station_ids) == 1:
            await self.session.execute(_NOTIFY, {"c": DISPLAY_CHANNEL, "s": station_ids[0]})
        elif station_ids:
            await self.session.execute(
                _NOTIFY_EACH, {"c": DISPLAY_CHANNEL, "ids": list(station_ids)}
            )

    # -- signing keys --------------------------------------------------------------------

    async def signing_key(self) -> dict[str, Any] | None:
        value = await self.session.scalar(
            select(signing_keys.c.jwk).order_by(signing_keys.c.created_at.desc()).limit(1)
        )
        return dict(value) if value is not None else None

    async def add_signing_key(self, jwk: dict[str, Any]) -> None:
        await self.session.execute(
            insert(signing_keys).values(kid=jwk["kid"], jwk=jwk).on_conflict_do_nothing()
        )

    # -- web payments (OCPP 2.1 C25) -----------------------------------------------------

    async def web_payment_terms(self, station_id: str) -> RowMapping | None:
        result = await self.session.execute(
            select(web_payment_terms).where(web_payment_terms.c.station_id == station_id)
        )
        return result.mappings().first()

    async def add_web_payment_terms(
        self, station_id: str, shared_secret: str, validity_s: int, code_length: int
    ) -> None:
        await self.session.execute(
            insert(web_payment_terms)
            .values(
                station_id=station_id,
                shared_secret=shared_secret,
                validity_s=validity_s,
                code_length=code_length,
            )
            .on_conflict_do_nothing()
        )

    async def web_payment_provisioned(self, station_id: str, at: datetime) -> None:
        await self.session.execute(
            update(web_payment_terms)
            .where(web_payment_terms.c.station_id == station_id)
            .values(provisioned_at=at)
        )

    async def web_payment_lock(self, station_id: str, connector_id: int) -> RowMapping | None:
        result = await self.session.execute(
            _WEB_PAYMENT_LOCK, {"station_id": station_id, "connector_id": connector_id}
        )
        return result.mappings().first()

    async def put_web_payment_lock(
        self, station_id: str, connector_id: int, session_id: uuid.UUID, until: datetime
    ) -> None:
        stmt = insert(web_payment_locks).values(
            station_id=station_id, connector_id=connector_id, session_id=session_id, until=until
        )
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[web_payment_locks.c.station_id, web_payment_locks.c.connector_id],
                set_={"session_id": session_id, "until": until},
            )
        )

    # --- guests' sessions ---

    async def mark_guest_session(
        self, session_id: uuid.UUID, station_id: str, connector_id: int, started_at: datetime
    ) -> None:
        """A guest scanned this session's code (the row is ours from the code's issue; made
        here if a scan ever overtook it)."""
        stmt = insert(sessions).values(
            session_id=session_id,
            station_id=station_id,
            connector_id=connector_id,
            state="code_issued",
            session_started_at=started_at,
            guest=True,
        )
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[sessions.c.session_id],
                set_={"guest": True, "updated_at": func.now()},
            )
        )

    async def is_guest_session(self, session_id: uuid.UUID) -> bool:
        guest = await self.session.scalar(_IS_GUEST_SESSION, {"session_id": session_id})
        return bool(guest)
