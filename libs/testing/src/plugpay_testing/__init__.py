"""Real infrastructure for tests: PostgreSQL and Kafka, found or started, never faked."""

from plugpay_testing.infrastructure import InfraUnavailable, kafka_bootstrap, postgres_admin_url

__all__ = ["InfraUnavailable", "kafka_bootstrap", "postgres_admin_url"]
