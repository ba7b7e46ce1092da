"""Kafka client security from :class:`~stratum.settings.KafkaSettings`, in the forms the
two client libraries take: keyword arguments for aiokafka (producer, admin, replay
consumer) and credentials for Faust. One place, so no client is left on PLAINTEXT."""

from __future__ import annotations

import ssl
from typing import Any

from aiokafka.helpers import create_ssl_context
from faust.auth import SASLCredentials, SSLCredentials

from stratum.settings import KafkaSettings


def ssl_context(kafka: KafkaSettings) -> ssl.SSLContext | None:
    if not kafka.tls:
        return None
    context: ssl.SSLContext = create_ssl_context(
        cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None,
        certfile=str(kafka.ssl_certfile) if kafka.ssl_certfile else None,
        keyfile=str(kafka.ssl_keyfile) if kafka.ssl_keyfile else None,
    )
    return context


def aiokafka_options(kafka: KafkaSettings) -> dict[str, Any]:
    """Extra keyword arguments for AIOKafkaProducer / Consumer / AdminClient."""
    options: dict[str, Any] = {"security_protocol": kafka.security_protocol}
    context = ssl_context(kafka)
    if context is not None:
        options["ssl_context"] = context
    if kafka.sasl:
        options.update(
            sasl_mechanism=kafka.sasl_mechanism,
            sasl_plain_username=kafka.sasl_username,
            sasl_plain_password=kafka.sasl_password,
        )
    return options


def faust_credentials(kafka: KafkaSettings) -> SASLCredentials | SSLCredentials | None:
    """``broker_credentials`` for faust.App (None: PLAINTEXT)."""
    context = ssl_context(kafka)
    if kafka.sasl:
        return SASLCredentials(
            username=kafka.sasl_username,
            password=kafka.sasl_password,
            ssl_context=context,
            mechanism=kafka.sasl_mechanism,
        )
    if context is not None:
        return SSLCredentials(context)
    return None
