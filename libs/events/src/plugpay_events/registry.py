"""Event type registry and the upcaster chain from old versions to the current one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from plugpay_events.envelope import Event

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

EVENT_TYPES: dict[str, type[Event]] = {}
_UPCASTERS: dict[tuple[str, int], Upcaster] = {}


class UnknownEventType(ValueError):
    """The envelope names a type this code base does not know."""


class UnsupportedEventVersion(ValueError):
    """The envelope's version is newer than this code, or has no upcaster path."""


def register(cls: type[Event]) -> type[Event]:
    """Class decorator: make an event type decodable by name."""
    if cls.type in EVENT_TYPES:
        raise ValueError(f"event type {cls.type} registered twice")
    EVENT_TYPES[cls.type] = cls
    return cls


def upcaster(event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Decorator: register the function turning version N of a payload into N+1."""

    def decorate(fn: Upcaster) -> Upcaster:
        _UPCASTERS[(event_type, from_version)] = fn
        return fn

    return decorate


def upcast(event_type: str, version: int, payload: dict[str, Any]) -> dict[str, Any]:
    """Bring a stored payload up to the current version of its type."""
    cls = EVENT_TYPES.get(event_type)
    if cls is None:
        raise UnknownEventType(event_type)
    if version > cls.version:
        raise UnsupportedEventVersion(f"{event_type} v{version} is newer than v{cls.version}")
    while version < cls.version:
        step = _UPCASTERS.get((event_type, version))
        if step is None:
            raise UnsupportedEventVersion(f"no upcaster for {event_type} v{version}")
        payload = step(payload)
        version += 1
    return payload


def upcastable(event_type: str, version: int) -> bool:
    """Whether upcasters lead from ``version`` of a registered type to its current version."""
    cls = EVENT_TYPES.get(event_type)
    return cls is not None and all(
        (event_type, v) in _UPCASTERS for v in range(version, cls.version)
    )


def decode_payload(event_type: str, version: int, payload: dict[str, Any]) -> Event:
    """Validate a payload of any supported version into the current event model."""
    cls = EVENT_TYPES.get(event_type)
    if cls is None:
        raise UnknownEventType(event_type)
    return cls.model_validate(upcast(event_type, version, payload))
