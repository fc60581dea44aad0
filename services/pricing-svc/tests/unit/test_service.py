"""Use cases with an in-memory store: decisions, snapshots, final costs, idempotency."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from plugpay_events import Envelope
from plugpay_events.bus.port import PoisonEvent
from plugpay_events.contracts.pricing import AccessPolicy, AccessWindow, StationCommercialsSet
from plugpay_events.contracts.sessions import (
    MeterSample,
    SessionCostCalculated,
    SessionDenied,
    SessionPriced,
)
from plugpay_platform.errors import Refusal
from pricing_svc import service
from pricing_svc.domain import usage_from_completion

from ..factories import FLAT_TARIFF, PEAK_TARIFF, completed, scanned, station_registered
from .fakes import FakeStore

ORG = uuid.uuid4()
OTHER_ORG = uuid.uuid4()
T0 = datetime(2025, 1, 10, 9, 0, tzinfo=UTC)
# 16:30 in Berlin (CET): the 17:00 peak starts half-way through an hour of charging.
BEFORE_PEAK = datetime(2025, 1, 15, 15, 30, tzinfo=UTC)


def wrap(event: Any) -> Envelope:
    return Envelope.wrap(event, producer="test")


async def station_with_tariff(
    store: FakeStore, body: dict[str, Any] = PEAK_TARIFF, policy: AccessPolicy | None = None
) -> None:
    await service.register_station(store, station_registered("ST-1", ORG))
    await service.publish_tariff(store, ORG, "T1", dict(body), T0)
    await service.set_commercials(
        store,
        ORG,
        "ST-1",
        service.CommercialsChange(
            time_zone="Europe/Berlin",
            tariff_key="T1",
            access_policy=policy or AccessPolicy(),
            connector_tariffs={},
            connector_max_power_w={2: 11_000},
        ),
        T0,
    )


async def test_commercials_are_emitted_with_the_owner_and_connector_limits() -> None:
    store = FakeStore()
    await station_with_tariff(store)
    (event,) = store.events("StationCommercialsSet")
    assert isinstance(event, StationCommercialsSet)
    assert event.organisation_id == ORG and event.power_class == "AC"
    assert event.connector_max_power_w == {2: 11_000} and event.tariff_key == "T1"
    assert (event.time_zone, event.status, event.updated_at) == ("Europe/Berlin", "active", T0)
    assert event.access_policy == AccessPolicy() and event.connector_tariffs == {}


async def test_an_operator_cannot_touch_another_organisations_station() -> None:
    store = FakeStore()
    await station_with_tariff(store)
    await service.publish_tariff(store, OTHER_ORG, "T2", dict(FLAT_TARIFF), T0)
    change = service.CommercialsChange("Europe/Berlin", "T2", AccessPolicy(), {}, {})
    with pytest.raises(Refusal) as refused:
        await service.set_commercials(store, OTHER_ORG, "ST-1", change, T0)
    assert (refused.value.status_code, refused.value.reason) == (404, "station_unknown")


async def test_commercials_refuse_other_organisations_tariffs_and_bad_zones() -> None:
    store = FakeStore()
    await station_with_tariff(store)
    await service.publish_tariff(store, OTHER_ORG, "THEIRS", dict(FLAT_TARIFF), T0)
    change = service.CommercialsChange(
        "Mars/Olympus", "THEIRS", AccessPolicy(), {3: "T1"}, {1: 50_000}
    )
    with pytest.raises(service.InvalidInput) as invalid:
        await service.set_commercials(store, ORG, "ST-1", change, T0)
    assert {(p["field"], p["reason"]) for p in invalid.value.problems} == {
        ("time_zone", "unknown_time_zone"),
        ("tariff_key", "tariff_unknown"),
        ("connectors[3]", "connector_unknown"),
        ("connectors[1].max_power_w", "power_above_rating"),
    }


async def test_tariff_versions_count_up_and_stay_with_their_organisation() -> None:
    store = FakeStore()
    first, created = await service.publish_tariff(store, ORG, "T1", dict(FLAT_TARIFF), T0)
    second, created_again = await service.publish_tariff(store, ORG, "T1", dict(PEAK_TARIFF), T0)
    assert (first.version, created, second.version, created_again) == (1, True, 2, False)
    assert [e.event().tariff.version for e in store.emitted] == [1, 2]  # type: ignore[attr-defined]
    with pytest.raises(Refusal) as refused:
        await service.publish_tariff(store, OTHER_ORG, "T1", dict(FLAT_TARIFF), T0)
    assert (refused.value.status_code, refused.value.reason) == (409, "tariff_key_unavailable")
    with pytest.raises(Refusal) as exists:
        await service.publish_tariff(store, ORG, "T1", dict(FLAT_TARIFF), T0, create_only=True)
    assert exists.value.reason == "tariff_exists"


async def test_invalid_tariffs_carry_the_calculators_reasons() -> None:
    body = {**FLAT_TARIFF, "currency": "EUX"}
    with pytest.raises(service.InvalidInput) as invalid:
        await service.publish_tariff(FakeStore(), ORG, "T1", body, T0)
    assert invalid.value.problems[0]["field"] == "currency"
    assert invalid.value.problems[0]["reason"] == "unknown_currency"


# --- authorisation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("station_id", "connector_id", "reason"),
    [("NOPE", 1, "station_unknown"), ("ST-1", 9, "connector_unavailable")],
)
async def test_unknown_stations_and_connectors_are_denied(
    station_id: str, connector_id: int, reason: str
) -> None:
    store = FakeStore()
    await station_with_tariff(store)
    event = scanned(station_id, connector_id=connector_id, at=T0 + timedelta(hours=1))
    await service.price_session(store, wrap(event), event)
    (denied,) = store.events("SessionDenied")
    assert isinstance(denied, SessionDenied)
    assert denied.reason == reason and denied.denied_by == "pricing-svc"


async def test_a_registered_station_without_commercials_is_unknown_for_pricing() -> None:
    store = FakeStore()
    await service.register_station(store, station_registered("ST-1", ORG))
    event = scanned("ST-1", at=T0)
    await service.price_session(store, wrap(event), event)
    assert store.events("SessionDenied")[0].reason == "station_unknown"  # type: ignore[attr-defined]


async def test_restricted_station_denies_outsiders_and_frees_staff() -> None:
    store = FakeStore()
    policy = AccessPolicy(kind="restricted", allowed_groups=("staff",), free_for_groups=("staff",))
    await station_with_tariff(store, policy=policy)
    outsider = scanned("ST-1", at=T0 + timedelta(hours=1), organisation_id=OTHER_ORG)
    staff = scanned("ST-1", at=T0 + timedelta(hours=1), organisation_id=ORG, groups=("staff",))
    for event in (outsider, staff):
        await service.price_session(store, wrap(event), event)
    assert store.events("SessionDenied")[0].reason == "access_denied"  # type: ignore[attr-defined]
    (priced,) = store.events("SessionPriced")
    assert isinstance(priced, SessionPriced)
    assert priced.session_id == staff.session_id and priced.free_of_charge


async def test_time_windows_are_read_on_the_station_clock() -> None:
    store = FakeStore()
    office = AccessWindow(days_of_week=(1, 2, 3, 4, 5), start_time="08:00", end_time="18:00")
    await station_with_tariff(store, policy=AccessPolicy(windows=(office,)))
    # Friday 2025-01-17: 07:30 UTC is 08:30 in Berlin (open), 17:30 UTC is 18:30 (closed).
    morning = scanned("ST-1", at=datetime(2025, 1, 17, 7, 30, tzinfo=UTC))
    evening = scanned("ST-1", at=datetime(2025, 1, 17, 17, 30, tzinfo=UTC))
    for event in (morning, evening):
        await service.price_session(store, wrap(event), event)
    assert [e.session_id for e in store.events("SessionPriced")] == [morning.session_id]  # type: ignore[attr-defined]
    (denied,) = store.events("SessionDenied")
    assert denied.session_id == evening.session_id and denied.reason == "access_denied"  # type: ignore[attr-defined]


async def test_priced_with_the_version_in_force_at_the_scan() -> None:
    store = FakeStore()
    await station_with_tariff(store)
    # v2 is published now but only valid from tomorrow: today's sessions keep v1.
    scheduled = {**FLAT_TARIFF, "valid_from": (T0 + timedelta(days=1)).isoformat()}
    await service.publish_tariff(store, ORG, "T1", scheduled, T0 + timedelta(hours=1))
    today = scanned("ST-1", at=T0 + timedelta(hours=2), connector_id=2)
    tomorrow = scanned("ST-1", at=T0 + timedelta(days=1, hours=1))
    for event in (today, tomorrow):
        await service.price_session(store, wrap(event), event)
    first, second = store.events("SessionPriced")
    assert isinstance(first, SessionPriced) and isinstance(second, SessionPriced)
    assert (first.tariff.version, second.tariff.version) == (1, 2)
    assert first.max_power_w == 11_000 and second.max_power_w == 22_000
    assert first.time_zone == "Europe/Berlin" and first.station_organisation_id == ORG


async def test_a_session_is_decided_once() -> None:
    store = FakeStore()
    await station_with_tariff(store)
    event = scanned("ST-1", at=T0 + timedelta(hours=1))
    redelivered_with_new_id = wrap(event)
    for envelope in (wrap(event), redelivered_with_new_id):
        await service.price_session(store, envelope, event)
    assert len(store.events("SessionPriced")) == 1


# --- final cost ---------------------------------------------------------------------------------


async def priced_session(store: FakeStore, **scan: Any) -> uuid.UUID:
    event = scanned("ST-1", at=T0 + timedelta(hours=1), **scan)
    await service.price_session(store, wrap(event), event)
    return event.session_id


async def cost(store: FakeStore, event: Any) -> SessionCostCalculated:
    await service.cost_session(store, wrap(event), event, T0)
    found = store.events("SessionCostCalculated")
    assert isinstance(found[-1], SessionCostCalculated)
    return found[-1]


async def test_a_peak_hour_starting_mid_session_prices_each_half_at_its_rate() -> None:
    store = FakeStore()
    await station_with_tariff(store)
    session_id = await priced_session(store)
    event = completed(session_id, "ST-1", started_at=BEFORE_PEAK, charging_s=3600, energy_wh=10_000)
    result = await cost(store, event)
    lines = {(line.component_type, line.element_index): line for line in result.breakdown.lines}
    # 5 kWh off-peak at 0.30 = 150 + 29 VAT; 5 kWh peak at 0.50 = 250 + 48 VAT (47.5 half-up);
    # session fee 100 + 19 VAT.
    assert lines["ENERGY", 1].quantity == 5000 and lines["ENERGY", 1].amount_incl_vat == 179
    assert lines["ENERGY", 0].quantity == 5000 and lines["ENERGY", 0].amount_incl_vat == 298
    assert lines["FLAT", 1].amount_incl_vat == 119
    assert result.total.amount_minor == 596 and result.total.currency == "EUR"
    assert result.breakdown.total_excl_vat == 500 and result.breakdown.total_vat == 96


async def test_the_snapshot_wins_over_a_tariff_changed_after_pricing() -> None:
    store = FakeStore()
    await station_with_tariff(store)
    session_id = await priced_session(store)
    await service.publish_tariff(store, ORG, "T1", dict(FLAT_TARIFF), T0 + timedelta(hours=2))
    event = completed(session_id, "ST-1", started_at=BEFORE_PEAK, charging_s=3600, energy_wh=10_000)
    result = await cost(store, event)
    assert result.breakdown.tariff_version == 1 and result.total.amount_minor == 596


async def test_idle_time_after_charging_is_parking() -> None:
    store = FakeStore()
    body = {
        "currency": "EUR",
        "elements": [
            {
                "price_components": [
                    {"type": "ENERGY", "price": "0.50", "vat": "19"},
                    {"type": "PARKING_TIME", "price": "6.00", "vat": "19", "step_size": 60},
                ]
            }
        ],
    }
    await station_with_tariff(store, body)
    session_id = await priced_session(store)
    start = datetime(2025, 1, 15, 9, 0, tzinfo=UTC)
    event = completed(
        session_id, "ST-1", started_at=start, charging_s=1800, parking_s=610, energy_wh=10_000
    )
    result = await cost(store, event)
    parking = next(x for x in result.breakdown.lines if x.component_type == "PARKING_TIME")
    # 610 s rounds up to 11 whole minutes at 0.10 excl. VAT each.
    assert parking.quantity == 660 and parking.step_extra == 50
    assert parking.amount_excl_vat == 110 and parking.vat == 21
    assert result.breakdown.parking_s == 610 and result.total.amount_minor == 500 + 95 + 131


async def test_free_sessions_cost_nothing_and_say_so() -> None:
    store = FakeStore()
    policy = AccessPolicy(free_for_groups=("staff",))
    await station_with_tariff(store, policy=policy)
    session_id = await priced_session(store, organisation_id=ORG, groups=("staff",))
    event = completed(session_id, "ST-1", started_at=BEFORE_PEAK, charging_s=3600, energy_wh=10_000)
    result = await cost(store, event)
    assert result.free_of_charge and result.total.amount_minor == 0
    assert result.breakdown.lines == () and result.breakdown.energy_wh == 10_000
    assert "free of charge" in result.breakdown.rounding


async def test_a_session_is_costed_once() -> None:
    store = FakeStore()
    await station_with_tariff(store)
    session_id = await priced_session(store)
    event = completed(session_id, "ST-1", started_at=BEFORE_PEAK, charging_s=3600, energy_wh=10_000)
    for _ in range(2):
        await service.cost_session(store, wrap(event), event, T0)
    assert len(store.events("SessionCostCalculated")) == 1


async def test_a_session_never_priced_is_poison() -> None:
    event = completed(uuid.uuid4(), "ST-1", started_at=BEFORE_PEAK, charging_s=60, energy_wh=1)
    with pytest.raises(PoisonEvent):
        await service.cost_session(FakeStore(), wrap(event), event, T0)


def test_usage_uses_energy_since_the_start_and_ends_on_the_reported_total() -> None:
    start = BEFORE_PEAK
    samples = (
        MeterSample(sampled_at=start - timedelta(seconds=5), energy_wh=999_000),  # before: dropped
        MeterSample(sampled_at=start + timedelta(minutes=10), energy_wh=1_002_000),
        MeterSample(sampled_at=start + timedelta(minutes=20), energy_wh=1_001_500),  # glitch
        MeterSample(sampled_at=start + timedelta(minutes=30), energy_wh=1_009_000),  # > total
    )
    usage = usage_from_completion(
        started_at=start,
        charging_ended_at=start + timedelta(minutes=40),
        ended_at=start + timedelta(minutes=45),
        meter_start_wh=1_000_000,
        energy_wh=8_000,
        samples=samples,
    )
    assert [s.energy_wh for s in usage.samples] == [2_000, 2_000, 8_000, 8_000]
    assert usage.samples[-1].at == start + timedelta(minutes=40) and usage.energy_wh == 8_000
