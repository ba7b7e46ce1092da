"""compose/ checked without a Docker engine: the files against the compose specification
(check-jsonschema's vendored schema catches unknown keys and wrong types), then what a
schema cannot see: every ``depends_on`` names a service and waits for it to be healthy,
every service has a healthcheck, every STRATUM_* variable is a real setting whose value
takes effect, the archive volume sits where Settings puts the archive, and the image
holds every package pyproject ships."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
import tomllib
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from pydantic import BaseModel

from stratum.app.cli import main as cli
from stratum.app.heartbeat import check_health, heartbeat_path
from stratum.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose" / "compose.yml"
OVERRIDE = ROOT / "compose" / "compose.override.yml"
SECRETS = {
    "STRATUM_API__ADMIN_TOKEN",
    "STRATUM_API__INGEST_TOKEN",
    "CLICKHOUSE_PASSWORD",
    "KAFKA_PASSWORD",
}
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}
INTERPOLATION = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())  # resolves the << merge keys
    return data


@pytest.fixture(scope="module")
def base() -> dict[str, Any]:
    return _load(COMPOSE)


@pytest.fixture(scope="module")
def stratum_services(base: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run the Stratum image."""
    found = {
        name: svc
        for name, svc in base["services"].items()
        if svc.get("build", {}).get("dockerfile") == "Dockerfile"
    }
    assert set(found) == {"worker", "api", "batch", "generator"}
    return found


def _substitute(value: str, placeholders: dict[str, str]) -> str:
    """Compose interpolation with a placeholder for every variable without a default."""

    def one(match: re.Match[str]) -> str:
        name, kind, rest = match.groups()
        if kind in (":-", "-"):
            return rest
        # Like real secrets: production wants 24+ characters, each token unlike the others.
        return placeholders.setdefault(name, f"placeholder-secret-{len(placeholders):06d}")

    return INTERPOLATION.sub(one, value)


def _setting(settings: Settings, variable: str) -> Any:
    """The Settings attribute a STRATUM_* variable sets; AttributeError if none."""
    value: Any = settings
    for part in variable.removeprefix("STRATUM_").lower().split("__"):
        if not isinstance(value, BaseModel) or part not in type(value).model_fields:
            raise AttributeError(f"{variable} is not a Stratum setting (no {part!r})")
        value = getattr(value, part)
    return value


def _took_effect(actual: Any, raw: str) -> bool:
    if isinstance(actual, bool):
        return actual == (raw.lower() in ("1", "true", "yes", "on"))
    if isinstance(actual, int | float):
        return float(actual) == float(raw)
    if isinstance(actual, Path):
        return actual == Path(raw)
    return bool(actual == raw)


def test_both_files_follow_the_compose_specification() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(COMPOSE),
            str(OVERRIDE),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_catches_a_typo(tmp_path: Path) -> None:
    """The validator is really looking: a misspelt key fails."""
    broken = tmp_path / "compose.yml"
    broken.write_text(COMPOSE.read_text().replace("healthcheck:", "helthcheck:", 1))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(broken),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "helthcheck" in result.stdout


def test_every_service_has_a_healthcheck_and_waits_for_healthy_dependencies(
    base: dict[str, Any],
) -> None:
    services = base["services"]
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        for needed, how in service.get("depends_on", {}).items():
            assert needed in services, f"{name} depends on {needed!r}, which is not a service"
            assert how == {"condition": "service_healthy"}, (name, needed, how)
    override = _load(OVERRIDE)
    for name in override["services"]:
        assert name in services, f"the override configures {name!r}, not in compose.yml"


def test_stratum_commands_and_healthchecks_name_real_cli_commands(
    stratum_services: dict[str, dict[str, Any]],
) -> None:
    for name, service in stratum_services.items():
        assert service["command"][0] in cli.commands, (name, service["command"])
        check = service["healthcheck"]["test"]
        assert check[:3] == ["CMD", "stratum", "healthcheck"], (name, check)
        assert check[3] in ("api", "worker", "batch"), (name, check)


def test_every_stratum_variable_is_a_real_setting_that_takes_effect(
    stratum_services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    overrides = _load(OVERRIDE)["services"]
    seen: set[str] = set()
    for name, service in stratum_services.items():
        env = {**service["environment"], **overrides.get(name, {}).get("environment", {})}
        placeholders: dict[str, str] = {}
        resolved = {key: _substitute(str(value), placeholders) for key, value in env.items()}
        assert set(placeholders) == SECRETS, (name, placeholders)
        for key in list(os.environ):
            if key.startswith("STRATUM_"):
                monkeypatch.delenv(key)
        for key, value in resolved.items():
            monkeypatch.setenv(key, value)
        settings = Settings(_env_file=None)  # type: ignore[call-arg]
        for key, value in resolved.items():
            assert key.startswith("STRATUM_"), f"{name}: {key} is not a Stratum variable"
            assert _took_effect(_setting(settings, key), value), (name, key, value)
            seen.add(key)
        assert settings.environment == "production"
        assert not settings.kafka.embedded
        assert settings.clickhouse_url.startswith("http://")
        assert settings.api.admin_token == placeholders["STRATUM_API__ADMIN_TOKEN"]
        assert settings.api.ingest_token == placeholders["STRATUM_API__INGEST_TOKEN"]
        assert placeholders["CLICKHOUSE_PASSWORD"] in settings.clickhouse_url
        kafka = settings.kafka
        assert kafka.sasl and kafka.sasl_username == "stratum"
        assert kafka.sasl_password == placeholders["KAFKA_PASSWORD"]
    assert {
        "STRATUM_KAFKA__URL",
        "STRATUM_CLICKHOUSE__URL",
        "STRATUM_DATA_DIR",
        "STRATUM_ENVIRONMENT",
        "STRATUM_API__ADMIN_TOKEN",
        "STRATUM_API__INGEST_TOKEN",
        "STRATUM_KAFKA__SECURITY_PROTOCOL",
        "STRATUM_KAFKA__SASL_PASSWORD",
    } <= seen


def test_kafka_speaks_sasl_on_the_listener_stratum_uses(
    base: dict[str, Any], stratum_services: dict[str, dict[str, Any]]
) -> None:
    """Issue 17, finding 7: Kafka was PLAINTEXT without authentication."""
    for env in (
        base["services"]["kafka"]["environment"],
        {
            **base["services"]["kafka"]["environment"],
            **_load(OVERRIDE)["services"]["kafka"]["environment"],
        },
    ):
        mapping = env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]
        protocols = dict(p.split(":") for p in mapping.split(","))
        listeners = {entry.split("://")[0] for entry in env["KAFKA_LISTENERS"].split(",")}
        for name in listeners - {env["KAFKA_CONTROLLER_LISTENER_NAMES"]}:
            assert protocols[name] in ("SASL_PLAINTEXT", "SASL_SSL"), (name, protocols)
            jaas = env[f"KAFKA_LISTENER_NAME_{name}_PLAIN_SASL_JAAS_CONFIG"]
            assert 'user_stratum="${KAFKA_PASSWORD:?' in jaas, jaas
        assert env["KAFKA_SASL_ENABLED_MECHANISMS"] == "PLAIN"
    for name, service in stratum_services.items():
        env = service["environment"]
        assert env["STRATUM_KAFKA__SECURITY_PROTOCOL"] == "SASL_PLAINTEXT", name
        assert env["STRATUM_KAFKA__SASL_MECHANISM"] == "PLAIN", name
    check = " ".join(base["services"]["kafka"]["healthcheck"]["test"])
    assert "--command-config" in check and "SASL_PLAINTEXT" in check


def test_services_are_hardened_and_limited(
    base: dict[str, Any], stratum_services: dict[str, dict[str, Any]]
) -> None:
    for name, service in base["services"].items():
        assert service.get("cap_drop") == ["ALL"], name
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        limits = service.get("deploy", {}).get("resources", {}).get("limits", {})
        assert limits.get("cpus") and limits.get("memory"), (name, limits)
    for name, service in stratum_services.items():
        assert service.get("read_only") is True, name
        assert "/tmp" in service["tmpfs"], name  # heartbeats (stratum.app.heartbeat)
        assert "cap_add" not in service, name
    data_dir = Path(stratum_services["worker"]["environment"]["STRATUM_DATA_DIR"])
    assert str(data_dir / "faust") in stratum_services["worker"]["tmpfs"]  # Faust's datadir


def test_secrets_are_required_not_defaulted() -> None:
    text = COMPOSE.read_text()
    for secret in SECRETS:
        uses = [m for m in INTERPOLATION.finditer(text) if m.group(1) == secret]
        assert uses, f"{secret} is not used"
        assert all(m.group(2) == ":?" for m in uses), f"{secret} must be ${{{secret}:?...}}"


def test_the_archive_volume_is_where_settings_puts_the_archive(
    base: dict[str, Any], stratum_services: dict[str, dict[str, Any]]
) -> None:
    """Workers write it, batch reads it: the same named volume where
    stratum.archive.archive_root puts it under the data dir."""
    data_dir = Path(stratum_services["worker"]["environment"]["STRATUM_DATA_DIR"])
    archive_dir = str(data_dir / "archive")
    mounts = {
        name: [v for v in svc.get("volumes", []) if v.startswith("archive:")]
        for name, svc in stratum_services.items()
    }
    assert mounts["worker"] == [f"archive:{archive_dir}"]
    assert mounts["batch"] == [f"archive:{archive_dir}:ro"]
    assert "archive" in base["volumes"]
    assert {"clickhouse-data", "kafka-data"} <= set(base["volumes"])


def test_the_image_holds_every_package_and_runs_unprivileged() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\w+) \./\1$", dockerfile, re.MULTILINE))
    assert copied == set(packages)
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, re.MULTILINE)
    assert re.search(r"^USER stratum$", dockerfile, re.MULTILINE)
    # A plain `docker run` must not serve the development token on 0.0.0.0.
    assert re.search(r"^ENV STRATUM_ENVIRONMENT=production", dockerfile, re.MULTILINE)
    assert 'ENTRYPOINT ["stratum"]' in dockerfile
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert not ignored & {*packages, "pyproject.toml", "README.md"}


@pytest.mark.parametrize(
    ("status", "healthy"), [("ok", True), ("degraded", False), ("down", False)]
)
def test_the_api_healthcheck_is_healthy_only_when_ok(status: str, healthy: bool) -> None:
    """A real HTTP server on 127.0.0.1 answering /v1/health; "degraded" used to pass."""
    body = orjson.dumps({"status": status, "components": {}})

    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        assert check_health("api", url) == (healthy, f"{url}/v1/health: {status}")
    finally:
        server.shutdown()


def test_healthcheck_reads_the_heartbeat(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    healthy, why = check_health("worker", "")
    assert not healthy and "no heartbeat" in why
    path = heartbeat_path("worker")
    path.write_bytes(orjson.dumps({"status": "ok", "detail": "2 partition(s)", "at": time.time()}))
    assert check_health("worker", "") == (True, "ok: 2 partition(s)")
    path.write_bytes(orjson.dumps({"status": "down", "detail": "flush failing", "at": time.time()}))
    assert check_health("worker", "")[0] is False
    path.write_bytes(orjson.dumps({"status": "ok", "detail": "", "at": time.time() - 120}))
    healthy, why = check_health("worker", "", max_age_s=30)
    assert not healthy and "old" in why
