"""The only module with SQL: the session store, timers, scan claims and rate limits."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from plugpay_events.contracts.sessions import SessionCodeScanned
from plugpay_events.outbox import OutboxTables
from sqlalchemy import Integer, Interval, and_, bindparam, delete, func, or_, select, text, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from session_svc.domain import ChargingSession, SessionStatus
from session_svc.tables import (
    STORE_TABLES,
    meter_summaries,
    rate_limit_hits,
    scan_claims,
    sessions,
    stations,
    timers,
)

Conn = AsyncSession | AsyncConnection

# Writers of the store take this lock shared; a rebuild takes it exclusively.
STORE_LOCK = "session-svc.store"
UPDATES_CHANNEL = "session_svc_updates"
# Typed codes the store has just learned (payload: the code), for scans waiting on one.
CODES_CHANNEL = "session_svc_codes"
# Where a scan waits for pricing and billing; from authorised on it has its answer.
WAITING_FOR_AUTHORISATION = (
    SessionStatus.CODE_ISSUED.value,
    SessionStatus.SCANNED.value,
    SessionStatus.PRICED.value,
)

# Statements run for every session or scan are built once: building a statement and its cache
# key costs more CPU than running it (docs/performance.md).
_LOCK_STORE_SHARED = text("SELECT pg_advisory_xact_lock_shared(hashtext(:k))")
_TRY_LOCK_STORE_SHARED = text("SELECT pg_try_advisory_xact_lock_shared(hashtext(:k))")
_LOCK_STORE_EXCLUSIVE = text("SELECT pg_advisory_lock(hashtext(:k))")
_UNLOCK_STORE_EXCLUSIVE = text("SELECT pg_advisory_unlock(hashtext(:k))")
_NOTIFY = text("SELECT pg_notify(:c, :p)")
_NOTIFY_EACH = "SELECT count(pg_notify($1, payload)) FROM unnest($2::text[]) AS payload"

_SELECT_SESSION = select(sessions.c.state).where(sessions.c.session_id == bindparam("session_id"))
_SELECT_SESSION_FOR_UPDATE = _SELECT_SESSION.with_for_update()
_SELECT_SESSIONS = select(sessions.c.state).where(
    sessions.c.session_id.in_(bindparam("session_ids", expanding=True))
)
# Always in the same order, so two writers of overlapping sets cannot deadlock.
_SELECT_SESSIONS_FOR_UPDATE = _SELECT_SESSIONS.order_by(sessions.c.session_id).with_for_update()
_session_upsert = pg_insert(sessions)
_UPSERT_SESSIONS = _session_upsert.on_conflict_do_update(
    index_elements=[sessions.c.session_id],
    set_={
        c.name: _session_upsert.excluded[c.name] for c in sessions.columns if c.name != "session_id"
    },
)
_SELECT_TYPED_CODE_SESSION = (
    select(sessions.c.session_id)
    .where(sessions.c.code == bindparam("code"))
    .order_by(sessions.c.session_started_at.desc())
    .limit(1)
)
_SELECT_NEWER_CODE = (
    select(sessions.c.session_id)
    .where(
        sessions.c.station_id == bindparam("station_id"),
        sessions.c.connector_id == bindparam("connector_id"),
        sessions.c.session_started_at > bindparam("issued_at"),
    )
    .limit(1)
)

_meter_upsert = pg_insert(meter_summaries)
_UPSERT_METER_READING = _meter_upsert.on_conflict_do_update(
    index_elements=[meter_summaries.c.session_id],
    set_={
        c.name: _meter_upsert.excluded[c.name]
        for c in meter_summaries.columns
        if c.name != "session_id"
    },
    where=meter_summaries.c.sampled_at < _meter_upsert.excluded.sampled_at,
)
_SELECT_METER_READING = select(meter_summaries).where(
    meter_summaries.c.session_id == bindparam("session_id")
)

_SELECT_STATION_PRESENCE = select(stations.c.online, stations.c.presence_changed_at).where(
    stations.c.station_id == bindparam("station_id")
)
_SELECT_STATION_IDS = select(stations.c.station_id)
_SELECT_STATION_NAME = select(stations.c.name).where(
    stations.c.station_id == bindparam("station_id")
)

_DELETE_TIMERS = delete(timers).where(
    timers.c.session_id.in_(bindparam("session_ids", expanding=True))
)
_INSERT_TIMERS = pg_insert(timers).on_conflict_do_nothing()
_DELETE_TIMER = delete(timers).where(
    timers.c.kind == bindparam("kind"), timers.c.session_id == bindparam("session_id")
)
_SELECT_DUE_TIMERS = (
    select(timers.c.kind, timers.c.session_id)
    .where(timers.c.due_at <= bindparam("now"))
    .order_by(timers.c.due_at)
    .limit(bindparam("limit", type_=Integer()))
    .with_for_update(skip_locked=True)
)
_SELECT_NEXT_TIMER_DUE = select(func.min(timers.c.due_at))

_COUNT_LATE_SCANS = (
    select(func.count())
    .select_from(scan_claims.outerjoin(sessions, sessions.c.session_id == scan_claims.c.session_id))
    .where(
        scan_claims.c.claimed_at > func.now() - bindparam("within", type_=Interval()),
        scan_claims.c.claimed_at < func.now() - bindparam("waited", type_=Interval()),
        or_(sessions.c.status.is_(None), sessions.c.status.in_(WAITING_FOR_AUTHORISATION)),
    )
)
_INSERT_SCAN_CLAIM = pg_insert(scan_claims).on_conflict_do_nothing()
_CLAIM_SCAN = _INSERT_SCAN_CLAIM.returning(scan_claims.c.session_id)
_SELECT_PENDING_SCAN = select(scan_claims.c.scanned).where(
    scan_claims.c.session_id == bindparam("session_id")
)
_SELECT_SCAN_CLAIMED = select(scan_claims.c.session_id).where(
    scan_claims.c.session_id == bindparam("session_id")
)
_COUNT_HIT = (
    pg_insert(rate_limit_hits)
    .values(hits=1)
    .on_conflict_do_update(
        index_elements=[rate_limit_hits.c.key, rate_limit_hits.c.window_start],
        set_={"hits": rate_limit_hits.c.hits + 1},
    )
    .returning(rate_limit_hits.c.hits)
)
_PRUNE_RATE_LIMITS = delete(rate_limit_hits).where(
    rate_limit_hits.c.window_start < bindparam("before")
)


async def lock_store_shared(db: Conn) -> None:
    """Wait until no rebuild runs, and keep it out until this transaction ends."""
    await db.execute(_LOCK_STORE_SHARED, {"k": STORE_LOCK})


async def try_lock_store_shared(db: Conn) -> bool:
    """Like ``lock_store_shared`` but answers False at once while a rebuild runs."""
    got = await db.scalar(_TRY_LOCK_STORE_SHARED, {"k": STORE_LOCK})
    return bool(got)


async def lock_store_exclusive(db: Conn) -> None:
    """Session-level lock for a rebuild (held on a dedicated connection until released)."""
    await db.execute(_LOCK_STORE_EXCLUSIVE, {"k": STORE_LOCK})


async def unlock_store_exclusive(db: Conn) -> None:
    await db.execute(_UNLOCK_STORE_EXCLUSIVE, {"k": STORE_LOCK})


async def reset_store(db: Conn, tables: OutboxTables, consumer: str) -> None:
    """Empty the projection and forget which events it handled."""
    await db.execute(text(f"TRUNCATE {', '.join(t.name for t in STORE_TABLES)}"))
    await db.execute(delete(tables.inbox).where(tables.inbox.c.consumer == consumer))


# --- sessions ------------------------------------------------------------------------------


async def load_session(
    db: Conn, session_id: uuid.UUID, *, for_update: bool = False
) -> ChargingSession | None:
    query = _SELECT_SESSION_FOR_UPDATE if for_update else _SELECT_SESSION
    state = await db.scalar(query, {"session_id": session_id})
    return None if state is None else ChargingSession.model_validate(state)


async def load_sessions(
    db: Conn, session_ids: set[uuid.UUID], *, for_update: bool = False
) -> dict[uuid.UUID, ChargingSession]:
    query = _SELECT_SESSIONS_FOR_UPDATE if for_update else _SELECT_SESSIONS
    rows = (await db.execute(query, {"session_ids": list(session_ids)})).all()
    states = [ChargingSession.model_validate(r.state) for r in rows]
    return {s.session_id: s for s in states}


def session_row(state: ChargingSession) -> dict[str, object]:
    """The columns of a session's row, all derived from its events."""
    return {**session_columns(state), "state": state.model_dump(mode="json")}


def session_columns(state: ChargingSession) -> dict[str, object]:
    """The columns of a session's row but ``state``, in table order."""
    assert state.status is not None
    return {
        "session_id": state.session_id,
        "status": state.status.value,
        "station_id": state.station_id,
        "connector_id": state.connector_id,
        "user_id": state.user_id,
        "station_organisation_id": state.station_organisation_id,
        "code": state.code,
        "token_id": state.token_id,
        "session_started_at": state.session_started_at,
        "updated_at": state.last_event_at,
        "version": state.version,
    }


async def save_sessions(db: Conn, states: list[ChargingSession]) -> None:
    """Upsert sessions' rows (one statement for many)."""
    if not states:
        return
    await db.execute(_UPSERT_SESSIONS, [session_row(s) for s in states])


async def notify_session_changed(db: Conn, session_id: uuid.UUID) -> None:
    """Tell every process's live streams (delivered when the transaction commits)."""
    await db.execute(_NOTIFY, {"c": UPDATES_CHANNEL, "p": str(session_id)})


async def find_typed_code(db: Conn, code: str) -> uuid.UUID | None:
    """The newest session that showed this typed code."""
    return await db.scalar(_SELECT_TYPED_CODE_SESSION, {"code": code})


@dataclass(frozen=True)
class SessionPage:
    states: list[ChargingSession]
    next_after: tuple[datetime, uuid.UUID] | None


async def list_sessions(
    db: Conn,
    *,
    user_id: uuid.UUID | None,
    organisation_id: uuid.UUID | None,
    statuses: list[SessionStatus] | None,
    started_from: datetime | None,
    started_before: datetime | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> SessionPage:
    """Newest first, keyset-paged on (session_started_at, session_id)."""
    query = select(sessions.c.state, sessions.c.session_started_at, sessions.c.session_id)
    if user_id is not None:
        query = query.where(sessions.c.user_id == user_id)
    if organisation_id is not None:
        # Unpriced sessions have no owner on the row yet; the station registry knows it.
        owned_stations = select(stations.c.station_id).where(
            stations.c.organisation_id == organisation_id
        )
        query = query.where(
            or_(
                sessions.c.station_organisation_id == organisation_id,
                and_(
                    sessions.c.station_organisation_id.is_(None),
                    sessions.c.station_id.in_(owned_stations),
                ),
            )
        )
    if statuses:
        query = query.where(sessions.c.status.in_([s.value for s in statuses]))
    if started_from is not None:
        query = query.where(sessions.c.session_started_at >= started_from)
    if started_before is not None:
        query = query.where(sessions.c.session_started_at < started_before)
    if after is not None:
        query = query.where(
            tuple_(sessions.c.session_started_at, sessions.c.session_id) < tuple_(*after)
        )
    query = query.order_by(
        sessions.c.session_started_at.desc(), sessions.c.session_id.desc()
    ).limit(limit + 1)
    rows = (await db.execute(query)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return SessionPage(
        [ChargingSession.model_validate(r.state) for r in rows],
        (rows[-1].session_started_at, rows[-1].session_id) if more and rows else None,
    )


# --- meter ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MeterReading:
    transaction_id: str
    sampled_at: datetime
    energy_register_wh: int
    power_w: int | None
    soc_percent: int | None


async def record_meter_reading(db: Conn, session_id: uuid.UUID, reading: MeterReading) -> None:
    """Keep the newest reading; older or repeated ones change nothing (order-independent)."""
    await db.execute(
        _UPSERT_METER_READING,
        {
            "session_id": session_id,
            "transaction_id": reading.transaction_id,
            "sampled_at": reading.sampled_at,
            "energy_register_wh": reading.energy_register_wh,
            "power_w": reading.power_w,
            "soc_percent": reading.soc_percent,
        },
    )


async def load_meter_reading(db: Conn, session_id: uuid.UUID) -> MeterReading | None:
    row = (await db.execute(_SELECT_METER_READING, {"session_id": session_id})).first()
    if row is None:
        return None
    return MeterReading(
        row.transaction_id, row.sampled_at, row.energy_register_wh, row.power_w, row.soc_percent
    )


# --- stations ------------------------------------------------------------------------------


async def record_presence(db: Conn, station_id: str, *, online: bool, at: datetime) -> None:
    await _upsert_station(db, station_id, {"online": online, "presence_changed_at": at})


async def record_station(
    db: Conn, station_id: str, *, organisation_id: uuid.UUID, name: str
) -> None:
    await _upsert_station(db, station_id, {"organisation_id": organisation_id, "name": name})


async def _upsert_station(db: Conn, station_id: str, values: dict[str, Any]) -> None:
    """Insert the station with ``values``, or set them on its row; other columns are kept."""
    await db.execute(
        pg_insert(stations)
        .values(station_id=station_id, **values)
        .on_conflict_do_update(index_elements=[stations.c.station_id], set_=values)
    )


async def station_presence(db: Conn, station_id: str) -> tuple[bool, datetime | None] | None:
    """Whether the store last heard the station online, and since when (None: no word yet)."""
    row = (await db.execute(_SELECT_STATION_PRESENCE, {"station_id": station_id})).first()
    if row is None or row.online is None:
        return None
    return bool(row.online), row.presence_changed_at


async def station_ids(db: Conn) -> list[str]:
    """Every station the store knows (a code's station tag is matched against them)."""
    return list(await db.scalars(_SELECT_STATION_IDS))


async def newer_code_exists(
    db: Conn, station_id: str, connector_id: int, issued_at: datetime
) -> bool:
    """Whether the station issued a code for the connector after ``issued_at`` (which retired
    the older one: the gateway keeps one live code per connector)."""
    found = await db.scalar(
        _SELECT_NEWER_CODE,
        {"station_id": station_id, "connector_id": connector_id, "issued_at": issued_at},
    )
    return found is not None


async def station_name(db: Conn, station_id: str) -> str | None:
    return await db.scalar(_SELECT_STATION_NAME, {"station_id": station_id})


# --- timers --------------------------------------------------------------------------------


async def replace_timers(
    db: Conn, session_ids: list[uuid.UUID], due: list[tuple[str, uuid.UUID, datetime]]
) -> None:
    """Make these sessions' timers exactly ``due`` (kind, session id, due at)."""
    if session_ids:
        await db.execute(_DELETE_TIMERS, {"session_ids": session_ids})
    if due:
        await db.execute(
            _INSERT_TIMERS, [{"kind": k, "session_id": s, "due_at": d} for k, s, d in due]
        )


async def delete_timer(db: Conn, kind: str, session_id: uuid.UUID) -> None:
    await db.execute(_DELETE_TIMER, {"kind": kind, "session_id": session_id})


async def claim_due_timers(db: Conn, now: datetime, limit: int) -> list[tuple[str, uuid.UUID]]:
    """Due timers no other replica is working on; locked until this transaction ends."""
    rows = (await db.execute(_SELECT_DUE_TIMERS, {"now": now, "limit": limit})).all()
    return [(r.kind, r.session_id) for r in rows]


async def next_timer_due(db: Conn) -> datetime | None:
    due: datetime | None = await db.scalar(_SELECT_NEXT_TIMER_DUE)
    return due


# --- command side --------------------------------------------------------------------------


async def claim_scan(
    db: Conn,
    session_id: uuid.UUID,
    user_id: uuid.UUID,
    scanned: SessionCodeScanned | None = None,
) -> bool:
    """The first scan of a code wins; a concurrent second one waits, then loses.

    ``scanned`` (the event the scan emits) is kept on the claim so the winner can read the
    session at once, before the store has consumed the event back from the log."""
    result = await db.execute(
        _CLAIM_SCAN,
        {
            "session_id": session_id,
            "user_id": user_id,
            "scanned": scanned.model_dump(mode="json") if scanned is not None else None,
        },
    )
    return result.first() is not None


async def late_scans(db: Conn, *, waited: timedelta, within: timedelta) -> int:
    """Scans claimed in the last ``within`` that have waited longer than ``waited`` and whose
    session is not authorised (nor denied) yet. The database's clock, as the claims'."""
    count = await db.scalar(_COUNT_LATE_SCANS, {"within": within, "waited": waited})
    return int(count or 0)


async def record_scan_claim(db: Conn, session_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """Projection side: a scan seen in the log is claimed (restores claims after a loss)."""
    await db.execute(_INSERT_SCAN_CLAIM, {"session_id": session_id, "user_id": user_id})


async def pending_scan(db: Conn, session_id: uuid.UUID) -> SessionCodeScanned | None:
    """The scan a claim recorded (None if unclaimed, or claimed by the projection)."""
    value = await db.scalar(_SELECT_PENDING_SCAN, {"session_id": session_id})
    return None if value is None else SessionCodeScanned.model_validate(value)


async def is_scan_claimed(db: Conn, session_id: uuid.UUID) -> bool:
    return (await db.scalar(_SELECT_SCAN_CLAIMED, {"session_id": session_id})) is not None


async def count_hit(db: Conn, key: str, window_start: datetime) -> int:
    """Count one request in a fixed window; returns the hits so far in it."""
    hits = await db.scalar(_COUNT_HIT, {"key": key, "window_start": window_start})
    return int(hits or 0)


async def prune_rate_limits(db: Conn, before: datetime) -> None:
    await db.execute(_PRUNE_RATE_LIMITS, {"before": before})


# --- bulk writes of a rebuild (plain asyncpg: COPY and array parameters) ------------------


async def driver_connection(db: Conn) -> Any:
    """The asyncpg connection under ``db`` (same transaction), for COPY and array statements."""
    connection = await db.connection() if isinstance(db, AsyncSession) else db
    raw = await connection.get_raw_connection()
    return raw.driver_connection


async def copy_inbox(db: Conn, tables: OutboxTables, consumer: str, ids: list[uuid.UUID]) -> None:
    """Record handled events (none of them recorded yet: a rebuild reset the inbox)."""
    if ids:
        pg = await driver_connection(db)
        await pg.copy_records_to_table(
            tables.inbox.name,
            records=[(consumer, i) for i in ids],
            columns=["consumer", "event_id"],
            schema_name=tables.inbox.schema,
        )


async def replace_store_rows(
    db: Conn,
    *,
    states: list[ChargingSession],
    rewritten: set[uuid.UUID],
    timers_due: list[tuple[str, uuid.UUID, datetime]],
    meter: list[tuple[uuid.UUID, MeterReading]],
    meter_rewritten: set[uuid.UUID],
) -> None:
    """Write sessions with their timers, and meter summaries, replacing the rows of ids in
    ``rewritten`` / ``meter_rewritten`` (all of these sessions' timers are in ``timers_due``)."""
    pg = await driver_connection(db)
    if rewritten:
        ids = list(rewritten)
        await pg.execute("DELETE FROM timers WHERE session_id = ANY($1::uuid[])", ids)
        await pg.execute("DELETE FROM sessions WHERE session_id = ANY($1::uuid[])", ids)
    if meter_rewritten:
        await pg.execute(
            "DELETE FROM meter_summaries WHERE session_id = ANY($1::uuid[])", list(meter_rewritten)
        )
    if states:
        await pg.copy_records_to_table(
            sessions.name,
            records=[(*session_columns(s).values(), s.model_dump_json()) for s in states],
            columns=[*session_columns(states[0]), "state"],
        )
    if timers_due:
        await pg.copy_records_to_table(
            timers.name, records=timers_due, columns=["kind", "session_id", "due_at"]
        )
    if meter:
        await pg.copy_records_to_table(
            meter_summaries.name,
            records=[
                (
                    s,
                    r.transaction_id,
                    r.sampled_at,
                    r.energy_register_wh,
                    r.power_w,
                    r.soc_percent,
                )
                for s, r in meter
            ],
            columns=[
                "session_id",
                "transaction_id",
                "sampled_at",
                "energy_register_wh",
                "power_w",
                "soc_percent",
            ],
        )


async def record_stations(
    db: Conn,
    presence: list[tuple[str, bool, datetime]],
    registrations: list[tuple[str, uuid.UUID, str]],
) -> None:
    """``record_presence`` and ``record_station`` for many stations (one statement each)."""
    pg = await driver_connection(db)
    if presence:
        await pg.execute(
            "INSERT INTO stations (station_id, online, presence_changed_at)"
            " SELECT * FROM unnest($1::varchar[], $2::boolean[], $3::timestamptz[])"
            " ON CONFLICT (station_id) DO UPDATE"
            " SET online = excluded.online, presence_changed_at = excluded.presence_changed_at",
            *map(list, zip(*presence, strict=True)),
        )
    if registrations:
        await pg.execute(
            "INSERT INTO stations (station_id, organisation_id, name)"
            " SELECT * FROM unnest($1::varchar[], $2::uuid[], $3::varchar[])"
            " ON CONFLICT (station_id) DO UPDATE"
            " SET organisation_id = excluded.organisation_id, name = excluded.name",
            *map(list, zip(*registrations, strict=True)),
        )


async def record_scan_claims(db: Conn, claims: list[tuple[uuid.UUID, uuid.UUID]]) -> None:
    """``record_scan_claim`` for many sessions (session id, user id)."""
    if claims:
        pg = await driver_connection(db)
        await pg.execute(
            "INSERT INTO scan_claims (session_id, user_id)"
            " SELECT * FROM unnest($1::uuid[], $2::uuid[]) ON CONFLICT DO NOTHING",
            *map(list, zip(*claims, strict=True)),
        )


async def notify_sessions_changed(db: Conn, session_ids: set[uuid.UUID]) -> None:
    """``notify_session_changed`` for many sessions (one statement)."""
    await _notify_each(db, UPDATES_CHANNEL, [str(s) for s in session_ids])


async def notify_codes_learned(db: Conn, codes: set[str]) -> None:
    """Tell every process which typed codes the store now knows (on commit)."""
    await _notify_each(db, CODES_CHANNEL, sorted(codes))


async def _notify_each(db: Conn, channel: str, payloads: list[str]) -> None:
    """One NOTIFY on ``channel`` per payload, sent in one statement."""
    if payloads:
        pg = await driver_connection(db)
        await pg.execute(_NOTIFY_EACH, channel, payloads)
