"""Create the log's topics explicitly, idempotently, with the partition count and configs
we mean (the embedded broker would otherwise auto-create 4 partitions with no config)."""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from stratum.errors import LogUnavailableError
from stratum.kafka_security import aiokafka_options
from stratum.settings import KafkaSettings

log = logging.getLogger(__name__)


def topic_names(kafka: KafkaSettings) -> list[str]:
    return [kafka.topic, kafka.late_topic, kafka.dead_letter_topic]


async def ensure_topics(kafka: KafkaSettings, bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=10_000, **aiokafka_options(kafka)
    )
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                name=name,
                num_partitions=kafka.partitions,
                replication_factor=kafka.replication_factor,
                topic_configs={"retention.ms": str(kafka.retention_ms), "cleanup.policy": "delete"},
            )
            for name in topic_names(kafka)
            if name not in existing
        ]
        if wanted:
            try:
                await admin.create_topics(wanted)
            except TopicAlreadyExistsError:
                pass
            log.info("created topics %s", ", ".join(t.name for t in wanted))
    except KafkaError as exc:
        raise LogUnavailableError(
            f"cannot reach Kafka at {bootstrap} to create topics: {exc}"
        ) from exc
    finally:
        await admin.close()
