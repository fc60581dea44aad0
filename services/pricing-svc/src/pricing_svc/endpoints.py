"""The pricing API: operators manage tariffs and stations' commercials; anyone reads a quote."""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from plugpay_events import utc_now
from plugpay_events.contracts.pricing import AccessPolicy
from plugpay_platform.app import service_database
from plugpay_platform.errors import Refusal
from plugpay_platform.security import CurrentOperator
from plugpay_tariffs.summary import describe
from pydantic import BaseModel

from pricing_svc import service
from pricing_svc.domain import Driver, Station, TariffVersion
from pricing_svc.repository import PricingRepository
from pricing_svc.schemas import (
    CommercialsOut,
    ConnectorOut,
    DirectoryConnectorOut,
    DirectoryOut,
    DirectoryStationOut,
    ExampleSessionOut,
    LimitsOut,
    MoneyOut,
    NearOut,
    PriceSummaryOut,
    QuoteOut,
    StationCommercialsIn,
    StationListOut,
    StationOut,
    TariffListOut,
    TariffOut,
)

router = APIRouter(prefix="/pricing")


async def operator_organisation(principal: CurrentOperator) -> uuid.UUID:
    """Operators act for their own organisation only."""
    if principal.organisation_id is None:
        raise Refusal("no_organisation", "your account belongs to no organisation", status_code=403)
    return principal.organisation_id


OperatorOrganisation = Annotated[uuid.UUID, Depends(operator_organisation)]


def _invalid_key(reason: str, message: str) -> service.InvalidInput:
    return service.InvalidInput(
        "tariff_invalid", [{"field": "key", "reason": reason, "message": message}]
    )


def _tariff_key(key: str) -> str:
    if not re.fullmatch(service.TARIFF_KEY_PATTERN, key):
        raise _invalid_key("invalid_key", "1-36 letters, digits, '.', '_' or '-'")
    return key


TARIFF_EXAMPLE = {
    "key": "AC-STANDARD",
    "currency": "EUR",
    "elements": [
        {
            "price_components": [
                {"type": "ENERGY", "price": "0.50", "vat": "19", "step_size": 1},
            ],
            "restrictions": {"start_time": "17:00", "end_time": "20:00"},
        },
        {
            "price_components": [
                {"type": "ENERGY", "price": "0.33", "vat": "19", "step_size": 1},
                {"type": "FLAT", "price": "0.84", "vat": "19"},
                {"type": "PARKING_TIME", "price": "6.00", "vat": "19", "step_size": 60},
            ]
        },
    ],
}
TariffBody = Annotated[
    dict[str, Any],
    Body(
        description="An OCPI 2.2.1-style tariff (plugpay_tariffs.Tariff) without id and version,"
        " which the server assigns. Prices are decimal strings excl. VAT in major units.",
        examples=[TARIFF_EXAMPLE],
    ),
]


def _tariff_out(version: TariffVersion) -> TariffOut:
    return TariffOut(
        key=version.key,
        version=version.version,
        organisation_id=version.organisation_id,
        published_at=version.published_at,
        effective_from=version.effective_from,
        tariff=version.tariff.model_dump(mode="json"),
        summary=describe(version.tariff, utc_now(), "UTC").text,
    )


def _station_out(station: Station) -> StationOut:
    commercials = station.commercials
    return StationOut(
        station_id=station.station_id,
        organisation_id=station.organisation_id,
        name=station.name,
        power_class=station.power_class,
        connectors=[
            ConnectorOut(
                connector_id=c.connector_id,
                power_type=c.power_type,
                standard=c.standard,
                rated_power_w=c.max_power_w,
                max_power_w=station.max_power_w(c.connector_id) or c.max_power_w,
                tariff_key=station.tariff_key(c.connector_id),
            )
            for c in station.connectors
        ],
        commercials=None
        if commercials is None
        else CommercialsOut(
            time_zone=commercials.time_zone,
            tariff_key=commercials.tariff_key,
            access_policy=commercials.access_policy.model_dump(mode="json"),
            status=commercials.status,
            updated_at=commercials.updated_at,
        ),
    )


Answer = TypeVar("Answer", bound=BaseModel)


def _revalidated(
    request: Request,
    response: Response,
    body: Answer,
    *,
    moving: str,
    max_age: int,
    private: bool,
    vary: str,
) -> Response | Answer:
    """A public read's answer with caching headers, or 304 when the client's ``If-None-Match``
    still holds. The ETag ignores the ``moving`` field (the instant of the answer), so a client
    revalidates cheaply until what it shows changes."""
    fingerprint = body.model_dump_json(exclude={moving}).encode()
    etag = f'"{hashlib.sha256(fingerprint).hexdigest()[:32]}"'
    headers = {
        "Cache-Control": f"{'private' if private else 'public'}, max-age={max_age}",
        "ETag": etag,
        "Vary": vary,
    }
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    response.headers.update(headers)
    return body


# --- tariffs ------------------------------------------------------------------------------------


@router.post("/tariffs", status_code=201, tags=["tariffs"])
async def create_tariff(
    request: Request, organisation_id: OperatorOrganisation, body: TariffBody
) -> TariffOut:
    """Create a tariff (version 1) under a new key."""
    data = dict(body)
    key = data.pop("key", None)
    if not isinstance(key, str):
        raise _invalid_key("missing", "a tariff needs a key")
    async with service_database(request).write() as session:
        version, _ = await service.publish_tariff(
            PricingRepository(session),
            organisation_id,
            _tariff_key(key),
            data,
            utc_now(),
            create_only=True,
        )
    return _tariff_out(version)


@router.put("/tariffs/{key}", tags=["tariffs"])
async def publish_tariff_version(
    request: Request,
    response: Response,
    key: str,
    organisation_id: OperatorOrganisation,
    body: TariffBody,
) -> TariffOut:
    """Publish the next version of a tariff (201 with version 1 when the key is new). Sessions
    already priced keep the version they were priced with."""
    data = dict(body)
    if data.pop("key", key) != key:
        raise _invalid_key("key_mismatch", "differs from the URL")
    async with service_database(request).write() as session:
        version, created = await service.publish_tariff(
            PricingRepository(session), organisation_id, _tariff_key(key), data, utc_now()
        )
    if created:
        response.status_code = 201
    return _tariff_out(version)


@router.get("/tariffs", tags=["tariffs"])
async def list_tariffs(request: Request, organisation_id: OperatorOrganisation) -> TariffListOut:
    """The organisation's tariffs, each at its latest version."""
    async with service_database(request).read() as session:
        versions = await PricingRepository(session).latest_tariffs_of(organisation_id)
    return TariffListOut(items=[_tariff_out(v) for v in versions])


async def _tariff_history(
    request: Request, organisation_id: uuid.UUID, key: str
) -> list[TariffVersion]:
    async with service_database(request).read() as session:
        return await service.tariff_history(PricingRepository(session), organisation_id, key)


@router.get("/tariffs/{key}", tags=["tariffs"])
async def get_tariff(
    request: Request, key: str, organisation_id: OperatorOrganisation
) -> TariffOut:
    """The latest version of a tariff."""
    history = await _tariff_history(request, organisation_id, key)
    return _tariff_out(history[-1])


@router.get("/tariffs/{key}/versions", tags=["tariffs"])
async def tariff_versions(
    request: Request, key: str, organisation_id: OperatorOrganisation
) -> TariffListOut:
    """Every version of a tariff, oldest first."""
    history = await _tariff_history(request, organisation_id, key)
    return TariffListOut(items=[_tariff_out(v) for v in history])


@router.get("/tariffs/{key}/versions/{version}", tags=["tariffs"])
async def tariff_version(
    request: Request, key: str, version: int, organisation_id: OperatorOrganisation
) -> TariffOut:
    """One version of a tariff (what a past session was priced with)."""
    history = await _tariff_history(request, organisation_id, key)
    found = next((v for v in history if v.version == version), None)
    if found is None:
        raise Refusal("tariff_version_unknown", f"{key} has no version {version}", status_code=404)
    return _tariff_out(found)


# --- find a charger (public) --------------------------------------------------------------------


async def optional_driver(request: Request) -> Driver | None:
    """The caller if a bearer token is sent (verified like any other), else anonymous."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Refusal(
            "unauthenticated",
            "send a bearer token, or no Authorization header at all",
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    principal = await request.app.state.token_verifier.verify(token.strip())
    return Driver(principal.user_id, principal.organisation_id, frozenset(principal.groups))


def _directory_station(entry: service.DirectoryEntry) -> DirectoryStationOut:
    station, row = entry.station, entry.row
    assert station.commercials is not None
    connectors = [
        DirectoryConnectorOut(
            connector_id=c.connector.connector_id,
            standard=c.connector.standard,
            power_type=c.connector.power_type,
            max_power_w=c.max_power_w,
            status=c.availability,
            ocpp_status=c.status,
            status_since=c.status_since,
            price=None
            if c.summary is None or c.version is None
            else PriceSummaryOut(
                tariff_key=c.version.key,
                tariff_version=c.version.version,
                currency=c.summary.currency,
                text=c.summary.text,
                **PriceSummaryOut.rates_of(c.summary),
            ),
        )
        for c in entry.connectors
    ]
    texts = {c.price.text for c in connectors if c.price}
    return DirectoryStationOut(
        station_id=station.station_id,
        name=station.name,
        address=row.address,
        latitude=row.latitude,
        longitude=row.longitude,
        distance_km=None if entry.distance_km is None else round(entry.distance_km, 3),
        access=station.commercials.access_policy.kind,
        online=entry.reachable,
        available_connectors=sum(c.status == "Available" for c in connectors),
        price_text=texts.pop() if len(texts) == 1 else None,
        connectors=connectors,
    )


@router.get("/stations/public", tags=["find a charger"], response_model=DirectoryOut)
async def find_stations(
    request: Request,
    response: Response,
    driver: Annotated[Driver | None, Depends(optional_driver)],
    lat: Annotated[float | None, Query(ge=-90, le=90, description="the driver's latitude")] = None,
    lon: Annotated[
        float | None, Query(ge=-180, le=180, description="the driver's longitude")
    ] = None,
    radius_km: Annotated[
        float | None, Query(gt=0, le=1000, description="only stations this close (needs lat/lon)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Response | DirectoryOut:
    """Find a charger: stations in service with location, each connector's live availability
    (Available / Occupied / Charging / Faulted / Unavailable / Offline) and the price in force,
    nearest first given ``lat``/``lon``.

    Public, like prices (EU AFIR): no token needed, and anonymous callers see public stations.
    With a bearer token, restricted stations whose audience includes the caller are listed too
    (the answer is then private to the caller). Cached for a few seconds (availability is live);
    ``ETag`` + ``If-None-Match`` → 304."""
    if (lat is None) != (lon is None):
        raise Refusal("location_incomplete", "give both lat and lon, or neither", status_code=422)
    if radius_km is not None and lat is None:
        raise Refusal("location_missing", "radius_km needs lat and lon", status_code=422)
    near = None if lat is None or lon is None else service.Near(lat, lon, radius_km)
    now = utc_now()
    async with service_database(request).read() as session:
        entries = await service.directory(
            PricingRepository(session), now, near=near, driver=driver, limit=limit
        )
    body = DirectoryOut(
        items=[_directory_station(e) for e in entries],
        near=None if near is None else NearOut(latitude=lat, longitude=lon, radius_km=radius_km),
        generated_at=now,
    )
    return _revalidated(
        request,
        response,
        body,
        moving="generated_at",
        max_age=request.app.state.settings.directory_max_age_s,
        private=driver is not None,
        vary="Authorization, Accept",
    )


# --- stations -----------------------------------------------------------------------------------


@router.get("/stations", tags=["stations"])
async def list_stations(request: Request, organisation_id: OperatorOrganisation) -> StationListOut:
    """The organisation's stations with their commercial data."""
    async with service_database(request).read() as session:
        stations = await PricingRepository(session).stations_of(organisation_id)
    return StationListOut(items=[_station_out(s) for s in stations])


@router.get("/stations/{station_id}", tags=["stations"])
async def get_station(
    request: Request, station_id: str, organisation_id: OperatorOrganisation
) -> StationOut:
    """One of the organisation's stations; ``commercials`` is null until set."""
    async with service_database(request).read() as session:
        station = await service.station_of(PricingRepository(session), organisation_id, station_id)
    return _station_out(station)


@router.put("/stations/{station_id}", tags=["stations"])
async def set_station_commercials(
    request: Request,
    station_id: str,
    organisation_id: OperatorOrganisation,
    body: StationCommercialsIn,
) -> StationOut:
    """Set a registered station's time zone, tariffs, connector limits and access policy."""
    change = service.CommercialsChange(
        time_zone=body.time_zone,
        tariff_key=body.tariff_key,
        access_policy=AccessPolicy.model_validate(body.access_policy.model_dump()),
        connector_tariffs={c.connector_id: c.tariff_key for c in body.connectors if c.tariff_key},
        connector_max_power_w={
            c.connector_id: c.max_power_w for c in body.connectors if c.max_power_w
        },
        status=body.status,
    )
    async with service_database(request).write() as session:
        station = await service.set_commercials(
            PricingRepository(session), organisation_id, station_id, change, utc_now()
        )
    return _station_out(station)


# --- quotes (public) ----------------------------------------------------------------------------


@router.get("/stations/{station_id}/quote", tags=["quotes"], response_model=QuoteOut)
async def get_quote(
    request: Request,
    response: Response,
    station_id: str,
    driver: Annotated[Driver | None, Depends(optional_driver)],
    connector: Annotated[int, Query(ge=1, le=2_147_483_647)] = 1,
    budget_minor: Annotated[
        int | None,
        Query(
            ge=0,
            le=100_000_000,
            description="an amount incl. VAT (minor units): what does it buy?",
        ),
    ] = None,
) -> Response | QuoteOut:
    """The price of charging at a connector now, in plain terms, incl. VAT. Public: prices are
    public information (EU AFIR); cacheable for a short while. A restricted station answers 404
    to whom the directory does not list it."""
    async with service_database(request).read() as session:
        found = await service.quote(
            PricingRepository(session), station_id, connector, utc_now(), budget_minor, driver
        )
    summary, tariff = found.summary, found.version.tariff
    commercials = found.station.commercials
    assert commercials is not None

    def money(amount: int | None) -> MoneyOut | None:
        return None if amount is None else MoneyOut(amount_minor=amount, currency=tariff.currency)

    body = QuoteOut(
        station_id=station_id,
        connector_id=connector,
        station_name=found.station.name,
        power_type=found.connector.power_type,
        max_power_w=found.max_power_w,
        access=commercials.access_policy.kind,
        in_service=commercials.status == "active",
        tariff_key=found.version.key,
        tariff_version=found.version.version,
        currency=tariff.currency,
        time_zone=commercials.time_zone,
        valid_at=summary.at,
        min_price_excl_vat=money(tariff.min_price),
        max_price_excl_vat=money(tariff.max_price),
        text=summary.text,
        **QuoteOut.rates_of(summary),
        example=ExampleSessionOut(
            energy_wh=found.example_energy_wh,
            duration_s=found.example_duration_s,
            total=MoneyOut(
                amount_minor=found.example.total_incl_vat, currency=found.example.currency
            ),
        ),
        limits=None
        if found.limits is None
        else LimitsOut(
            budget=MoneyOut(amount_minor=found.limits.budget_incl_vat, currency=tariff.currency),
            affordable=found.limits.affordable,
            max_energy_wh=found.limits.max_energy_wh,
            max_duration_s=found.limits.max_duration_s,
            note=found.limits.note,
        ),
    )
    private = commercials.access_policy.kind != "public"
    return _revalidated(
        request,
        response,
        body,
        moving="valid_at",
        max_age=request.app.state.settings.quote_max_age_s,
        private=private,
        vary="Authorization, Accept" if private else "Accept",
    )
