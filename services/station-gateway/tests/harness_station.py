"""The harness's stations: their organisation, password and tariff, and the frames they send.

One definition for ``conftest.py`` and the tests that speak to the gateway as a station.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import string
import uuid
from datetime import UTC, datetime
from typing import Any

from plugpay_tariffs import Tariff

PASSWORD = "station-secret-1234"
ORG = uuid.UUID("00000000-0000-0000-0000-0000000000aa")  # the harness registers stations here
TARIFF = Tariff.model_validate(  # the tariff snapshot of every harness session
    {
        "id": "t-1",
        "version": 1,
        "currency": "EUR",
        "elements": [{"price_components": [{"type": "ENERGY", "price": "0.40", "vat": "0"}]}],
    }
)


def basic(station_id: str, password: str = PASSWORD) -> str:
    """The handshake's ``Authorization`` header value (OCPP security profile 1)."""
    return "Basic " + base64.b64encode(f"{station_id}:{password}".encode()).decode()


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def readings16(at: datetime, wh: int) -> list[dict[str, Any]]:
    """A 1.6 meterValue: the energy register in Wh."""
    return [
        {
            "timestamp": iso(at),
            "sampledValue": [
                {"value": str(wh), "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
            ],
        }
    ]


def readings201(
    at: datetime, value: float, unit: str = "kWh", context: str = "Sample.Periodic"
) -> list[dict[str, Any]]:
    """A 2.0.1/2.1 meterValue (snake-cased for the ``ocpp`` library): the energy register."""
    return [
        {
            "timestamp": iso(at),
            "sampled_value": [
                {
                    "value": value,
                    "measurand": "Energy.Active.Import.Register",
                    "context": context,
                    "unit_of_measure": {"unit": unit},
                }
            ],
        }
    ]


def meter201(at: datetime, wh: float, context: str = "Sample.Periodic") -> list[dict[str, Any]]:
    """The register at ``wh`` as a 2.0.1/2.1 station reports it (in kWh)."""
    return readings201(at, wh / 1000, "kWh", context)


BASE62 = string.digits + string.ascii_lowercase + string.ascii_uppercase


def station_totp(secret: str, unix_seconds: int, validity_s: int, length: int) -> str:
    """OCPP 2.1 C25 TOTP v1 as a station computes it, written from the spec's text (not the
    gateway's code): HMAC-SHA256 over the 8-byte big-endian time step keyed with the shared
    secret; the offset is the last byte's low four bits; from there, byte by byte (wrapping),
    each byte modulo 62 picks a character of 0-9a-zA-Z."""
    mac = hmac.new(
        secret.encode(), (unix_seconds // validity_s).to_bytes(8, "big"), hashlib.sha256
    ).digest()
    offset = mac[-1] % 16
    return "".join(BASE62[mac[(offset + i) % len(mac)] % 62] for i in range(length))


# 1.6 stations: ``station._call`` is the ``ocpp`` library's v16 call module.


async def boot16(station: Any, model: str = "M1", vendor: str = "Acme") -> Any:
    return await station.call(
        station._call.BootNotification(charge_point_model=model, charge_point_vendor=vendor)
    )


async def request_code16(station: Any, connector_id: int = 1) -> dict[str, Any]:
    """Plugpay's DataTransfer for a session code, accepted: its data (JSON in 1.6)."""
    answer = await station.call(
        station._call.DataTransfer(
            vendor_id="com.plugpay",
            message_id="RequestSessionCode",
            data=json.dumps({"connectorId": connector_id}),
        )
    )
    assert answer.status == "Accepted", answer
    return dict(json.loads(answer.data))


async def start_transaction16(station: Any, id_tag: str, meter_start: int, at: datetime) -> Any:
    """A StartTransaction on connector 1 (``id_tag``: the one a RemoteStartTransaction gave)."""
    return await station.call(
        station._call.StartTransaction(
            connector_id=1, id_tag=id_tag, meter_start=meter_start, timestamp=iso(at)
        )
    )


async def meter_values16(station: Any, transaction_id: int, at: datetime, wh: int) -> Any:
    """A MeterValues on connector 1: the transaction's register at ``wh``."""
    return await station.call(
        station._call.MeterValues(
            connector_id=1, transaction_id=transaction_id, meter_value=readings16(at, wh)
        )
    )


# 2.0.1 and 2.1 stations: ``station._call`` is the call module of the station's version.


async def boot201(station: Any, model: str = "M", vendor: str = "A") -> Any:
    return await station.call(
        station._call.BootNotification(
            charging_station={"model": model, "vendor_name": vendor}, reason="PowerUp"
        )
    )


async def request_code201(station: Any, connector_id: int = 1) -> Any:
    """Plugpay's DataTransfer for a session code (the answer's keys come snake-cased)."""
    return await station.call(
        station._call.DataTransfer(
            vendor_id="com.plugpay",
            message_id="RequestSessionCode",
            data={"connectorId": connector_id},
        )
    )


async def code_on_display201(harness: Any, station: Any) -> dict[str, Any]:
    """A code requested and shown (its QR code, then the code to type): the answer's data,
    its keys snake-cased by the client library."""
    reply = await request_code201(station)
    assert reply.status == "Accepted"
    shown = await harness.eventually(
        lambda: len(station.got("SetDisplayMessage")) >= 2 and station.got("SetDisplayMessage")
    )
    assert shown[0]["message"] == {"format": "URI", "content": reply.data["qr"]}
    assert reply.data["code"] in shown[1]["message"]["content"]
    return dict(reply.data)


async def start_transaction201(
    station: Any,
    start: dict[str, Any],
    transaction_id: str,
    at: datetime,
    wh: float,
    *,
    evse: int = 1,
    id_token: dict[str, Any] | None = None,
) -> Any:
    """The Started TransactionEvent answering ``start`` (a RequestStartTransaction the station
    got), its register at ``wh``; ``id_token`` replaces the token it was given."""
    return await station.call(
        station._call.TransactionEvent(
            event_type="Started",
            timestamp=iso(at),
            trigger_reason="RemoteStart",
            seq_no=0,
            transaction_info={
                "transaction_id": transaction_id,
                "remote_start_id": start["remote_start_id"],
            },
            id_token=id_token or start["id_token"],
            evse={"id": evse, "connector_id": 1},
            meter_value=meter201(at, wh, "Transaction.Begin"),
        )
    )


async def charging_update201(
    station: Any, transaction_id: str, seq_no: int, meter_value: list[dict[str, Any]]
) -> Any:
    """A periodic Updated TransactionEvent while charging, at the time of its reading."""
    return await station.call(
        station._call.TransactionEvent(
            event_type="Updated",
            timestamp=meter_value[0]["timestamp"],
            trigger_reason="MeterValuePeriodic",
            seq_no=seq_no,
            transaction_info={"transaction_id": transaction_id, "charging_state": "Charging"},
            meter_value=meter_value,
        )
    )


def transaction_ended201(
    station: Any,
    transaction_id: str,
    seq_no: int,
    meter_value: list[dict[str, Any]],
    *,
    trigger_reason: str,
    stopped_reason: str,
    **fields: Any,
) -> Any:
    """An Ended TransactionEvent at the time of its reading, to send (a station may repeat it)."""
    return station._call.TransactionEvent(
        event_type="Ended",
        timestamp=meter_value[0]["timestamp"],
        trigger_reason=trigger_reason,
        seq_no=seq_no,
        transaction_info={"transaction_id": transaction_id, "stopped_reason": stopped_reason},
        meter_value=meter_value,
        **fields,
    )
