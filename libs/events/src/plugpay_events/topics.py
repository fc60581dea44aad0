"""Topic names and settings, defined once for Kafka, the embedded log and Kubernetes."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Topic:
    """One Kafka topic: a bounded context's event log, kept forever."""

    name: str
    partitions: int
    description: str
    # retention.ms=-1: topics are the event log, projections are rebuilt from offset 0.
    config: dict[str, str] = field(
        default_factory=lambda: {"retention.ms": "-1", "cleanup.policy": "delete"}
    )
    replication_factor_prod: int = 3
    min_insync_replicas_prod: int = 2

    def qualified(self, prefix: str = "") -> str:
        """The topic name with an optional isolation prefix (tests, tenants)."""
        return f"{prefix}{self.name}"


SESSIONS = Topic("plugpay.sessions", 12, "Charging-session lifecycle, keyed by session id")
METER = Topic("plugpay.meter", 12, "High-volume meter readings, keyed by session id")
STATIONS = Topic(
    "plugpay.stations", 6, "Station presence and connector status, keyed by station id"
)
IDENTITY = Topic("plugpay.identity", 3, "Users, organisations, station registry and credentials")
PRICING = Topic("plugpay.pricing", 3, "Tariffs and stations' commercial data")
BILLING = Topic(
    "plugpay.billing", 6, "Wallets, top-ups, payment methods, refunds, keyed by account"
)
DEAD_LETTER = Topic("plugpay.deadletter", 1, "Events a consumer could not decode or handle")

ALL_TOPICS: tuple[Topic, ...] = (SESSIONS, METER, STATIONS, IDENTITY, PRICING, BILLING, DEAD_LETTER)
TOPICS_BY_NAME: dict[str, Topic] = {t.name: t for t in ALL_TOPICS}
