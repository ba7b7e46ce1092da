"""ClickHouse server URLs: credentials decoded for the client, never shown in logs."""

from __future__ import annotations

from stratum.storage.client import redact_url, server_options


def test_percent_encoded_credentials_reach_the_client_decoded() -> None:
    options = server_options("https://ana%40corp:p%40ss%3Aw%2Frd@ch.example:9440")
    assert options == {
        "host": "ch.example",
        "port": 9440,
        "username": "ana@corp",
        "password": "p@ss:w/rd",
        "secure": True,
    }


def test_defaults_for_a_bare_url() -> None:
    assert server_options("http://ch") == {
        "host": "ch",
        "port": 8123,
        "username": "default",
        "password": "",
        "secure": False,
    }


def test_passwords_and_queries_are_redacted() -> None:
    assert (
        redact_url("https://ana:secret@ch.example:8443/?x=1") == "https://ana:***@ch.example:8443/"
    )
    assert redact_url("http://ch:8123") == "http://ch:8123"
    assert redact_url("chdb:///data/clickhouse?mode=x") == "chdb:///data/clickhouse"
