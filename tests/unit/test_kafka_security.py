"""Kafka and ClickHouse security settings reach every client (issue 17, finding 7): the
aiokafka producer, admin client and replay consumer take :func:`aiokafka_options`, the
Faust consumer the same through :func:`faust_credentials`; no broker with SASL runs here,
so the clients are built and their security read back, not connected."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from pydantic import ValidationError

from stratum.kafka_security import aiokafka_options, faust_credentials
from stratum.settings import KafkaSettings, Settings
from stratum.storage.client import ServerAuth, server_options

# Any CA bundle will do to build a TLS context: the system's.
CA_FILE = ssl.get_default_verify_paths().cafile or ssl.get_default_verify_paths().openssl_cafile
SASL = {
    "url": "kafka-1:9093",
    "security_protocol": "SASL_SSL",
    "sasl_mechanism": "SCRAM-SHA-512",
    "sasl_username": "stratum",
    "sasl_password": "p@ss:word",
    "ssl_cafile": CA_FILE,
}


def _without_context(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k != "ssl_context"}


def test_sasl_ssl_reaches_aiokafka_and_faust_alike() -> None:
    kafka = KafkaSettings(**SASL)
    options = aiokafka_options(kafka)
    assert _without_context(options) == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "stratum",
        "sasl_plain_password": "p@ss:word",
    }
    assert options["ssl_context"] is not None
    faust = credentials_to_aiokafka_auth(faust_credentials(kafka))
    assert _without_context(dict(faust)) == _without_context(options)
    assert faust["ssl_context"] is not None

    async def build() -> list[Any]:
        return [
            AIOKafkaProducer(bootstrap_servers=kafka.url, **options),
            AIOKafkaConsumer(bootstrap_servers=kafka.url, **options),
        ]

    for client in asyncio.run(build()):
        inner = client.client if isinstance(client, AIOKafkaProducer) else client._client
        assert inner._security_protocol == "SASL_SSL"
        assert inner._sasl_mechanism == "SCRAM-SHA-512"
        assert inner._ssl_context is options["ssl_context"]


def test_plaintext_stays_the_default_and_sasl_plaintext_needs_no_tls() -> None:
    assert aiokafka_options(KafkaSettings()) == {"security_protocol": "PLAINTEXT"}
    assert faust_credentials(KafkaSettings()) is None
    inside = KafkaSettings(
        url="kafka:9092",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username="u",
        sasl_password="p",
    )
    options = aiokafka_options(inside)
    assert "ssl_context" not in options and options["sasl_mechanism"] == "PLAIN"
    assert (
        credentials_to_aiokafka_auth(faust_credentials(inside))["security_protocol"]
        == "SASL_PLAINTEXT"
    )


@pytest.mark.parametrize(
    ("kafka", "says"),
    [
        ({"url": "k:9092", "security_protocol": "SASL_SSL"}, "SASL_USERNAME"),
        ({"security_protocol": "SSL"}, "embedded broker speaks PLAINTEXT only"),
        ({"url": "k:9092", "security_protocol": "SSL", "ssl_certfile": "/c.pem"}, "go together"),
    ],
)
def test_incomplete_kafka_security_is_refused(kafka: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        Settings(_env_file=None, kafka=kafka)  # type: ignore[call-arg]


def test_clickhouse_https_takes_user_password_and_ca_from_settings() -> None:
    url = "https://ignored:old@clickhouse.example:8443"
    options = server_options(url, ServerAuth("stratum", "p@ss/word", CA_FILE))
    assert options == {
        "host": "clickhouse.example",
        "port": 8443,
        "username": "stratum",
        "password": "p@ss/word",
        "secure": True,
        "ca_cert": CA_FILE,
    }
    assert server_options("http://u:p%40@ch:8123")["password"] == "p@"
