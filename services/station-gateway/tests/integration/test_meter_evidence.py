"""Lying charge points (the ``ocpp`` library, 1.6 and 2.0.1): whatever they report, the
SessionCompleted the gateway emits bills no more than the connector could physically deliver
between our authorisation and the stop we received, and says how it judged the claim."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from ..harness_station import (
    boot16,
    boot201,
    charging_update201,
    iso,
    meter_values16,
    readings201,
    request_code16,
    request_code201,
    start_transaction16,
    transaction_ended201,
)

pytestmark = pytest.mark.infra

MAX_POWER_W = 22_000  # what the harness registers for every connector
MONTH_AHEAD = timedelta(days=20)  # the analytics suite's stations live in next month


def physical_bound_wh(since: datetime) -> int:
    """22 kW from ``since`` until now, with the judgement's 5 % and 100 Wh."""
    seconds = (datetime.now(UTC) - since).total_seconds()
    return int(MAX_POWER_W * seconds / 3600 * 1.05) + 100


async def start16(
    harness: Any, station: Any, authorized_at: datetime, started_at: datetime, meter_start: int
) -> tuple[str, int]:
    await boot16(station, "M1", "Liar")
    session_id = (await request_code16(station))["sessionId"]
    await harness.authorize(session_id, station.id, authorized_at=authorized_at)
    starts = await harness.eventually(lambda: station.got("RemoteStartTransaction"), 15)
    started = await start_transaction16(station, starts[0]["id_tag"], meter_start, started_at)
    assert started.id_tag_info["status"] == "Accepted"
    await harness.wait_event("ChargingStarted", where=lambda p: p["session_id"] == session_id)
    return session_id, started.transaction_id


async def completed(harness: Any, session_id: str) -> dict[str, Any]:
    events = await harness.wait_event(
        "SessionCompleted", where=lambda p: p["session_id"] == session_id
    )
    return dict(events[0])


async def test_16_ten_megawatt_hours_two_seconds_after_the_start(harness: Any) -> None:
    await harness.start_gateway()
    await harness.register("LIAR-MWH")
    station = await harness.connect("LIAR-MWH")
    authorized_at = datetime.now(UTC)
    session_id, tx = await start16(harness, station, authorized_at, authorized_at, 10_000)
    await station.call(
        call16.StopTransaction(
            meter_stop=10_000 + 10_000_000,
            timestamp=iso(authorized_at + timedelta(seconds=2)),
            transaction_id=tx,
            reason="Local",
        )
    )
    done = await completed(harness, session_id)
    bound = physical_bound_wh(authorized_at)
    assert done["energy_wh"] <= bound < 10_000
    assert done["energy_wh"] == 0
    judgement = done["judgement"]
    assert judgement["outcome"] == "held"
    assert "register_jump" in judgement["reasons"]
    assert judgement["claimed"]["energy_wh"] == 10_000_000
    assert judgement["max_power_w"] == MAX_POWER_W
    assert judgement["max_energy_wh"] <= bound
    [flagged] = await harness.wait_event(
        "SessionFlagged", where=lambda p: p["session_id"] == session_id
    )
    assert flagged["judgement"] == judgement
    assert flagged["billed_energy_wh"] == done["energy_wh"]
    assert flagged["transaction_id"] == str(tx)
    await harness.close(station)


async def test_16_start_backdated_by_thirty_days(harness: Any) -> None:
    await harness.start_gateway()
    await harness.register("LIAR-OLD")
    station = await harness.connect("LIAR-OLD")
    authorized_at = datetime.now(UTC) - timedelta(minutes=10)
    session_id, tx = await start16(
        harness, station, authorized_at, authorized_at - timedelta(days=30), 10_000
    )
    await station.call(
        call16.StopTransaction(
            meter_stop=11_000,
            timestamp=iso(datetime.now(UTC)),
            transaction_id=tx,
            reason="EVDisconnected",
        )
    )
    done = await completed(harness, session_id)
    assert done["judgement"]["outcome"] == "corrected"
    assert done["judgement"]["reasons"] == ["start_before_authorisation"]
    started = datetime.fromisoformat(done["started_at"])
    assert abs(started - authorized_at) < timedelta(seconds=1)
    assert done["energy_wh"] == 1_000 <= physical_bound_wh(authorized_at)
    # A correction is flagged too, so operators can see it (billing lists it, nothing to decide).
    [flagged] = await harness.wait_event(
        "SessionFlagged", where=lambda p: p["session_id"] == session_id
    )
    assert flagged["judgement"] == done["judgement"]
    await harness.close(station)


async def test_16_register_going_backwards_bills_what_was_delivered(harness: Any) -> None:
    await harness.start_gateway()
    await harness.register("LIAR-BACK")
    station = await harness.connect("LIAR-BACK")
    now = datetime.now(UTC)
    authorized_at = now - timedelta(minutes=40)
    session_id, tx = await start16(
        harness, station, authorized_at, now - timedelta(minutes=35), 10_000
    )
    await meter_values16(station, tx, now - timedelta(minutes=20), 11_000)
    await station.call(
        call16.StopTransaction(
            meter_stop=9_000, timestamp=iso(now - timedelta(minutes=1)), transaction_id=tx
        )
    )
    done = await completed(harness, session_id)
    assert done["judgement"]["outcome"] == "corrected"
    assert done["judgement"]["reasons"] == ["meter_stop_below_register"]
    assert done["judgement"]["claimed"]["energy_wh"] == 0
    assert done["energy_wh"] == 1_000 <= physical_bound_wh(authorized_at)
    assert done["meter_stop_wh"] - done["meter_start_wh"] == 1_000
    await harness.close(station)


async def test_16_offline_zero_baseline(harness: Any) -> None:
    await harness.start_gateway()
    await harness.register("LIAR-ZERO")
    station = await harness.connect("LIAR-ZERO")
    now = datetime.now(UTC)
    authorized_at = now - timedelta(minutes=10)
    started_at = now - timedelta(minutes=9)
    session_id, tx = await start16(harness, station, authorized_at, started_at, 0)
    await meter_values16(station, tx, started_at + timedelta(seconds=30), 910_000)
    await station.call(
        call16.StopTransaction(
            meter_stop=910_083, timestamp=iso(now - timedelta(minutes=1)), transaction_id=tx
        )
    )
    done = await completed(harness, session_id)
    assert done["judgement"]["outcome"] == "corrected"
    assert done["judgement"]["reasons"] == ["meter_start_mismatch"]
    assert done["judgement"]["claimed"]["energy_wh"] == 910_083
    assert done["energy_wh"] == 83
    await harness.close(station)


async def run201(
    harness: Any, station_id: str, registers: list[tuple[timedelta, float]], unit: str
) -> tuple[dict[str, Any], datetime]:
    """A 2.0.1 transaction whose readings are ``registers`` (offset from the start, value)."""
    station = await harness.connect(station_id, "2.0.1")
    await boot201(station, "M2", "Liar")
    reply = await request_code201(station)
    session_id = reply.data["session_id"]
    now = datetime.now(UTC)
    authorized_at = now - timedelta(minutes=5)
    await harness.authorize(session_id, station_id, authorized_at=authorized_at)
    starts = await harness.eventually(lambda: station.got("RequestStartTransaction"))
    t0 = now - timedelta(minutes=4)
    (first_at, first), *rest = registers
    await station.call(
        call201.TransactionEvent(
            event_type="Started",
            timestamp=iso(t0),
            trigger_reason="RemoteStart",
            seq_no=0,
            transaction_info={
                "transaction_id": f"tx-{station_id}",
                "remote_start_id": starts[0]["remote_start_id"],
            },
            id_token=starts[0]["id_token"],
            evse={"id": 1, "connector_id": 1},
            meter_value=readings201(t0 + first_at, first, unit, "Transaction.Begin"),
        )
    )
    await harness.wait_event("ChargingStarted", where=lambda p: p["session_id"] == session_id)
    for seq, (offset, value) in enumerate(rest[:-1], start=1):
        await charging_update201(
            station,
            f"tx-{station_id}",
            seq,
            readings201(t0 + offset, value, unit, "Sample.Periodic"),
        )
    end_at, end_value = rest[-1]
    await station.call(
        transaction_ended201(
            station,
            f"tx-{station_id}",
            len(rest),
            readings201(t0 + end_at, end_value, unit, "Transaction.End"),
            trigger_reason="EVDeparted",
            stopped_reason="Local",
        )
    )
    done = await completed(harness, session_id)
    await harness.close(station)
    return done, authorized_at


async def test_201_wh_labelled_as_kwh(harness: Any) -> None:
    await harness.start_gateway()
    await harness.register("LIAR-KWH")
    seconds = timedelta(seconds=5)
    done, authorized_at = await run201(
        harness, "LIAR-KWH", [(i * seconds, 50_000 + 15 * i) for i in range(4)], "kWh"
    )
    assert done["judgement"]["claimed"]["energy_wh"] == 45_000
    assert done["judgement"]["outcome"] == "held"
    assert done["energy_wh"] <= physical_bound_wh(authorized_at)
    assert done["energy_wh"] == 0


async def test_201_inflated_last_reading_and_honest_ones(harness: Any) -> None:
    await harness.start_gateway()
    await harness.register("LIAR-201")
    minute = timedelta(minutes=1)
    done, authorized_at = await run201(
        harness, "LIAR-201", [(0 * minute, 50.0), (minute, 50.3), (2 * minute, 10_050.3)], "kWh"
    )
    assert done["judgement"]["outcome"] == "held"
    assert done["judgement"]["reasons"] == ["register_jump"]
    assert done["energy_wh"] == 300 <= physical_bound_wh(authorized_at)


async def test_201_honest_session_is_accepted_as_reported(harness: Any) -> None:
    await harness.start_gateway()
    await harness.register("HONEST-201")
    minute = timedelta(minutes=1)
    done, _ = await run201(
        harness, "HONEST-201", [(0 * minute, 50.0), (minute, 50.3), (2 * minute, 50.6)], "kWh"
    )
    assert done["judgement"]["outcome"] == "accepted"
    assert done["judgement"]["reasons"] == []
    assert done["energy_wh"] == 600 == done["judgement"]["claimed"]["energy_wh"]


async def honest_fast_16(
    harness: Any, station_id: str, *, speedup: int, calendar_offset: timedelta
) -> dict[str, Any]:
    """A 1.6 charger that meters 22 kW ``speedup`` times faster than real time for a minute,
    its clock ``calendar_offset`` away from ours (a test stack's simulated station)."""
    station = await harness.connect(station_id)
    now = datetime.now(UTC)
    authorized_at = now - timedelta(minutes=1)
    started_at = authorized_at + calendar_offset
    step_wh = MAX_POWER_W * speedup * 10 // 3600
    session_id, tx = await start16(harness, station, authorized_at, started_at, 10_000)
    for i in range(1, 6):
        await meter_values16(
            station, tx, started_at + i * timedelta(seconds=10), 10_000 + i * step_wh
        )
    await station.call(
        call16.StopTransaction(
            meter_stop=10_000 + 6 * step_wh,
            timestamp=iso(started_at + timedelta(seconds=60)),
            transaction_id=tx,
            reason="EVDisconnected",
        )
    )
    done = await completed(harness, session_id)
    await harness.close(station)
    assert done["judgement"]["claimed"]["energy_wh"] == 6 * step_wh
    return done


async def test_a_fast_simulator_is_held_on_a_real_stack(harness: Any) -> None:
    await harness.start_gateway()
    await harness.register("SIM-REAL")
    done = await honest_fast_16(harness, "SIM-REAL", speedup=60, calendar_offset=timedelta(0))
    assert done["judgement"]["outcome"] == "held"
    assert done["energy_wh"] <= physical_bound_wh(datetime.now(UTC) - timedelta(minutes=2))


async def test_a_test_stack_with_the_speedup_accepts_its_fast_simulator(harness: Any) -> None:
    await harness.start_gateway(simulated_meter_speedup=60.0)
    await harness.register("SIM-FAST")
    done = await honest_fast_16(harness, "SIM-FAST", speedup=60, calendar_offset=timedelta(0))
    assert done["judgement"]["outcome"] == "accepted"
    assert done["judgement"]["max_power_w"] == MAX_POWER_W * 60
    assert done["energy_wh"] == done["judgement"]["claimed"]["energy_wh"]


async def test_a_simulated_calendar_is_corrected_on_a_real_stack(harness: Any) -> None:
    await harness.start_gateway(simulated_meter_speedup=60.0)
    await harness.register("SIM-MONTH")
    done = await honest_fast_16(harness, "SIM-MONTH", speedup=60, calendar_offset=MONTH_AHEAD)
    # Its samples are dated outside our window: the stop's 22 kWh then comes from nowhere.
    assert done["judgement"]["outcome"] == "held"
    assert {"start_in_future", "sample_time_implausible"} <= set(done["judgement"]["reasons"])
    assert datetime.fromisoformat(done["started_at"]) < datetime.now(UTC)


async def test_a_test_stack_with_simulated_clocks_accepts_its_calendar(harness: Any) -> None:
    await harness.start_gateway(simulated_meter_speedup=60.0, simulated_station_clocks=True)
    await harness.register("SIM-CAL")
    done = await honest_fast_16(harness, "SIM-CAL", speedup=60, calendar_offset=MONTH_AHEAD)
    assert done["judgement"]["outcome"] == "accepted"
    assert datetime.fromisoformat(done["started_at"]) > datetime.now(UTC) + timedelta(days=19)
    assert done["energy_wh"] == done["judgement"]["claimed"]["energy_wh"]


async def test_the_periodic_limit_check_leaves_a_session_that_ended_meanwhile_alone(
    harness: Any,
) -> None:
    """The limit check lists the charging sessions, then evaluates each: one that ended in
    between keeps its final figures (a running cost written over them was answered later as
    the Ended totalCost)."""
    import uuid

    from station_gateway import service
    from station_gateway.repository import Repository

    gw = await harness.start_gateway()
    await harness.register("LIMIT-RACE")
    station = await harness.connect("LIMIT-RACE")
    authorized_at = datetime.now(UTC)
    session_id, tx = await start16(harness, station, authorized_at, authorized_at, 10_000)
    database = gw.app.state.gateway.database
    sid = uuid.UUID(session_id)
    async with database.write() as session:
        [running] = await service.check_progress(session, [sid], datetime.now(UTC))
    assert running.session_id == sid
    await station.call(
        call16.StopTransaction(
            meter_stop=10_000 + 100,
            timestamp=iso(datetime.now(UTC)),
            transaction_id=tx,
            reason="Local",
        )
    )
    await completed(harness, session_id)
    async with database.write() as session:
        final = await Repository(session).session_row(sid)
        assert await service.check_progress(session, [sid], datetime.now(UTC)) == []
        after = await Repository(session).session_row(sid)
    assert final is not None and after is not None
    assert (after["cost_so_far_minor"], after["meter_last_wh"]) == (
        final["cost_so_far_minor"],
        final["meter_last_wh"],
    )
    await harness.close(station)
