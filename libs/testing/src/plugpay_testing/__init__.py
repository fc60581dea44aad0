"""Real infrastructure for tests (PostgreSQL and Kafka, found or started, never faked) and
waiting for observable conditions."""

from plugpay_testing.databases import scratch_database
from plugpay_testing.infrastructure import InfraUnavailable, kafka_bootstrap, postgres_admin_url
from plugpay_testing.waiting import NotYet, eventually, eventually_blocking

__all__ = [
    "InfraUnavailable",
    "NotYet",
    "eventually",
    "eventually_blocking",
    "kafka_bootstrap",
    "postgres_admin_url",
    "scratch_database",
]
