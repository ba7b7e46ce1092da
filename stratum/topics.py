"""Create the log's topics explicitly, idempotently, with the partition count and configs
we mean (the embedded broker would otherwise auto-create 4 partitions with no config).

A ``[[source]]``'s topic is never created: :func:`missing_source_topics` finds the ones
that do not exist, by listing the cluster's topics. Listing names no topic, so no broker
auto-creates one; a metadata request that names a topic (aiokafka's ``describe_topics``,
a consumer subscribing) made the embedded broker create it with 4 partitions.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from stratum.errors import LogUnavailableError
from stratum.kafka_security import aiokafka_options
from stratum.metrics import MetricCatalog
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


async def existing_topics(kafka: KafkaSettings, bootstrap: str) -> set[str]:
    """The topics the cluster lists to this client (metadata for all topics: it names
    none, so it creates none)."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=10_000, **aiokafka_options(kafka)
    )
    try:
        await admin.start()
        return set(await admin.list_topics())
    except KafkaError as exc:
        raise LogUnavailableError(
            f"cannot reach Kafka at {bootstrap} to list topics: {exc}"
        ) from exc
    finally:
        await admin.close()


def source_topic_problems(catalog: MetricCatalog, existing: Collection[str]) -> dict[str, str]:
    """Each source some metric reads whose topic is not in ``existing``: source name ->
    what to tell the user (the source, the topic, what is not computed, the fix)."""
    problems = {}
    for name in catalog.source_names[1:]:
        source = catalog.source(name)
        if source is None or source.topic in existing:
            continue
        metrics = ", ".join(catalog.for_source(name).names)
        problems[name] = (
            f"source {name!r}: topic {source.topic!r} does not exist (or this client may "
            f"not describe it), so its metrics ({metrics}) are not computed; Stratum never "
            "creates a source's topic: create it, or correct the source's topic in the "
            "definitions, then restart the worker"
        )
    return problems


async def missing_source_topics(
    kafka: KafkaSettings, bootstrap: str, catalog: MetricCatalog
) -> dict[str, str]:
    """:func:`source_topic_problems` against the cluster at ``bootstrap``."""
    if len(catalog.source_names) == 1:  # the built-in topic only: nothing to ask
        return {}
    return source_topic_problems(catalog, await existing_topics(kafka, bootstrap))
