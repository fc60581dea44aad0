"""Events and tariff bodies the pricing tests share."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from plugpay_events.contracts.identity import ConnectorSpec, StationRegistered
from plugpay_events.contracts.sessions import MeterSample, SessionCodeScanned, SessionCompleted
from plugpay_events.types import utc_now

# Off-peak 0.30, peak (17:00-20:00 station time) 0.50 EUR/kWh excl. 19 % VAT, 1.00 per session.
PEAK_TARIFF: dict[str, Any] = {
    "currency": "EUR",
    "elements": [
        {
            "price_components": [{"type": "ENERGY", "price": "0.50", "vat": "19"}],
            "restrictions": {"start_time": "17:00", "end_time": "20:00"},
        },
        {
            "price_components": [
                {"type": "ENERGY", "price": "0.30", "vat": "19"},
                {"type": "FLAT", "price": "1.00", "vat": "19"},
            ]
        },
    ],
}

FLAT_TARIFF: dict[str, Any] = {
    "currency": "EUR",
    "elements": [{"price_components": [{"type": "ENERGY", "price": "0.40", "vat": "19"}]}],
}


def station_registered(
    station_id: str, organisation_id: uuid.UUID, *, connectors: int = 2, power_w: int = 22_000
) -> StationRegistered:
    return StationRegistered(
        station_id=station_id,
        organisation_id=organisation_id,
        name=f"Station {station_id}",
        connectors=tuple(
            ConnectorSpec(connector_id=i, max_power_w=power_w) for i in range(1, connectors + 1)
        ),
        registered_at=utc_now(),
    )


def scanned(
    station_id: str,
    *,
    session_id: uuid.UUID | None = None,
    connector_id: int = 1,
    at: datetime | None = None,
    organisation_id: uuid.UUID | None = None,
    groups: tuple[str, ...] = (),
) -> SessionCodeScanned:
    at = at or utc_now()
    return SessionCodeScanned(
        session_id=session_id or uuid.uuid4(),
        station_id=station_id,
        connector_id=connector_id,
        session_started_at=at - timedelta(seconds=30),
        scanned_at=at,
        user_id=uuid.uuid4(),
        organisation_id=organisation_id,
        user_groups=groups,
        code_kind="qr",
    )


def completed(
    session_id: uuid.UUID,
    station_id: str,
    *,
    started_at: datetime,
    charging_s: int,
    parking_s: int = 0,
    energy_wh: int,
    meter_start_wh: int = 1_000_000,
    samples: int = 4,
) -> SessionCompleted:
    """Charging at a constant rate, with ``samples`` evenly spaced register readings."""
    charging_ended_at = started_at + timedelta(seconds=charging_s)
    readings = tuple(
        MeterSample(
            sampled_at=started_at + timedelta(seconds=charging_s * i / samples),
            energy_wh=meter_start_wh + energy_wh * i // samples,
        )
        for i in range(1, samples + 1)
    )
    return SessionCompleted(
        session_id=session_id,
        station_id=station_id,
        connector_id=1,
        transaction_id="tx-1",
        meter_start_wh=meter_start_wh,
        meter_stop_wh=meter_start_wh + energy_wh,
        energy_wh=energy_wh,
        started_at=started_at,
        charging_ended_at=charging_ended_at,
        ended_at=charging_ended_at + timedelta(seconds=parking_s),
        stop_reason="ev_disconnected",
        samples=readings,
    )
