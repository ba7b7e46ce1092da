"""The ``stratum`` command."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import click
from pydantic import ValidationError

from stratum.errors import StratumError
from stratum.settings import Settings


def _settings(**overrides: Any) -> Settings:
    """The settings, or exit with one line naming what is wrong (no traceback)."""
    try:
        return _build_settings(**overrides)
    except ValidationError as exc:
        _fail(settings_message(exc))


def settings_message(exc: ValidationError) -> str:
    """A ValidationError in one line: ``where: what; ...``."""
    problems = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"{where}: {message}" if where else message)
    return "refusing to start: " + "; ".join(problems)


def _build_settings(**overrides: Any) -> Settings:
    base = Settings()
    data: dict[str, Any] = base.model_dump()
    for key, value in overrides.items():
        if value is None:
            continue
        if "." in key:
            group, name = key.split(".", 1)
            data[group] = {**data[group], name: value}
        else:
            data[key] = value
    return Settings.model_validate(data)


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("aiokafka", "faust", "mode", "apscheduler", "httpx", "kafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _fail(exc: BaseException | str) -> NoReturn:
    click.secho(f"stratum: {exc}", fg="red", err=True)
    sys.exit(2)


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(verbose: bool) -> None:
    """Stratum: event-time analytics, fresh from Kafka, corrected by batch."""
    _logging(verbose)


# The commands import what they run when they run: `stratum healthcheck` and `stratum
# recompute` start without loading Faust, Polars or Dash.


def _serve(settings: Settings, roles: Any, banner: bool) -> None:
    from stratum.app.platform import create_platform_app, uvicorn_server

    try:
        app = create_platform_app(settings, roles)
    except StratumError as exc:
        _fail(exc)
    server = uvicorn_server(app, settings, roles.stopping)

    async def run() -> None:
        serving = asyncio.create_task(server.serve())
        started = asyncio.create_task(roles.started.wait())
        await asyncio.wait({serving, started}, return_when=asyncio.FIRST_COMPLETED)
        if banner and roles.started.is_set():
            base = settings.api_url
            click.secho(f"\nStratum is up ({time.monotonic() - t0:.1f} s)", fg="green", bold=True)
            click.echo(f"  dashboard  {base}/dashboard/")
            click.echo(f"  API docs   {base}/docs")
            click.echo(f"  ingest     POST {base}/v1/events")
            click.echo(f"  data dir   {settings.data_dir.resolve()}")
            click.echo("  Ctrl-C stops everything.\n")
        await serving
        started.cancel()

    t0 = time.monotonic()
    try:
        asyncio.run(run())
    except StratumError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        # uvicorn stops gracefully on Ctrl-C, then raises it again: by then everything
        # is stopped, which click would call "Aborted!" (exit 1). 130: the shell's code
        # for a stop by SIGINT.
        click.echo("Stratum stopped.", err=True)
        sys.exit(128 + signal.SIGINT)


@main.command()
@click.option("--demo", is_flag=True, help="Also run the demo generator (with history).")
@click.option("--port", type=int, default=None, help="HTTP port (default 8000).")
@click.option("--host", default=None, help="HTTP host (default 127.0.0.1).")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where the archive, chDB files and the broker's journal live "
    "(default: STRATUM_DATA_DIR, else ./.stratum).",
)
@click.option(
    "--rate", type=float, default=200.0, show_default=True, help="Demo events per second."
)
def up(demo: bool, port: int | None, host: str | None, data_dir: Path | None, rate: float) -> None:
    """Run the whole platform in one process (embedded broker and chDB by default)."""
    from stratum.app.platform import Roles

    settings = _settings(data_dir=data_dir, **{"api.port": port, "api.host": host})
    roles = Roles(
        speed=True,
        batch=True,
        demo=demo,
        demo_rate_per_s=rate,
        first_batch_after_s=20.0 if demo else None,
    )
    _serve(settings, roles, banner=True)


@main.command()
@click.option("--port", type=int, default=None)
@click.option("--host", default=None)
def api(port: int | None, host: str | None) -> None:
    """Ingest, the REST API and the dashboard (against Kafka and ClickHouse)."""
    from stratum.app.platform import Roles

    settings = _settings(**{"api.port": port, "api.host": host})
    _serve(settings, Roles(), banner=True)


@main.command()
def worker() -> None:
    """The speed layer and the archiver (Faust agents)."""
    from stratum.app.processes import run_worker

    try:
        asyncio.run(run_worker(_settings()))
    except StratumError as exc:
        _fail(exc)


@main.command()
def batch() -> None:
    """The batch scheduler (runs scheduled and requested recomputes)."""
    from stratum.app.processes import run_batch

    try:
        asyncio.run(run_batch(_settings()))
    except StratumError as exc:
        _fail(exc)


@main.command()
@click.argument("role", type=click.Choice(["api", "worker", "batch"]))
@click.option(
    "--url", default=None, help="api: the API to ask (default: this host's STRATUM_API__PORT)."
)
@click.option(
    "--max-age",
    type=float,
    default=30.0,
    show_default=True,
    help="worker, batch: seconds after which a heartbeat counts as stale.",
)
def healthcheck(role: str, url: str | None, max_age: float) -> None:
    """Exit 0 if this host's Stratum ROLE is healthy, 1 if not (container healthchecks)."""
    from stratum.app.heartbeat import check_health

    if url is None and role == "api":
        url = f"http://127.0.0.1:{_settings().api.port}"
    healthy, why = check_health(role, url or "", max_age_s=max_age)
    click.echo(why)
    sys.exit(0 if healthy else 1)


@main.command()
@click.option("--url", default=None, help="Stratum API (default from settings).")
@click.option(
    "--rate",
    type=float,
    default=200.0,
    show_default=True,
    help="Events per second, paced in event time (history and live alike).",
)
@click.option(
    "--bursts",
    is_flag=True,
    help="Add bursts: 4x the rate for 5 s of every 45 s (mean 1.33x the rate).",
)
@click.option("--duration", type=float, default=None, help="Seconds (default: until Ctrl-C).")
@click.option("--backfill", type=float, default=0.0, help="Seconds of history to send first.")
@click.option("--seed", type=int, default=None, help="Random seed, for a repeatable stream.")
def generate(
    url: str | None,
    rate: float,
    bursts: bool,
    duration: float | None,
    backfill: float,
    seed: int | None,
) -> None:
    """Post a realistic synthetic stream to a running Stratum."""
    from ingest.generator import DEMO_BURSTS_S, GeneratorConfig, run_generator

    settings = _settings()
    config = GeneratorConfig(
        rate_per_s=rate,
        backfill_s=backfill,
        seed=seed,
        burst_every_s=DEMO_BURSTS_S if bursts else 0.0,
    )
    try:
        sent = asyncio.run(
            run_generator(
                url or settings.api_url,
                config,
                duration_s=duration,
                token=settings.api.ingest_token,
            )
        )
    except KeyboardInterrupt:
        return
    click.echo(f"accepted {sent} events")


@main.command()
@click.option("--url", default=None, help="Stratum API (default from settings).")
@click.option("--token", default=None, help="Admin token (default from settings).")
@click.option("--full", is_flag=True, help="Recompute every hour, not only dirty ones.")
@click.option("--wait/--no-wait", default=True, help="Follow the job to its end.")
def recompute(url: str | None, token: str | None, full: bool, wait: bool) -> None:
    """Ask a running Stratum for a batch recompute and follow its progress."""
    from stratum.app.admin_client import follow_batch

    settings = _settings()
    try:
        follow_batch(
            url or settings.api_url,
            token or settings.api.admin_token,
            mode="full" if full else "incremental",
            wait=wait,
        )
    except StratumError as exc:
        _fail(exc)


@main.command()
@click.option("--url", default=None, help="Stratum API (default from settings).")
@click.option("--token", default=None, help="Admin token (default from settings).")
@click.option(
    "--from",
    "from_time",
    default=None,
    help="Rebuild from this time (ISO-8601, epoch ms, now-6h); default: all.",
)
@click.option("--wait/--no-wait", default=True, help="Follow the job to its end.")
def replay(url: str | None, token: str | None, from_time: str | None, wait: bool) -> None:
    """Ask a running Stratum to rebuild its speed views from the log (Kappa replay)."""
    from stratum.app.admin_client import follow_replay

    settings = _settings()
    try:
        follow_replay(
            url or settings.api_url,
            token or settings.api.admin_token,
            from_time=from_time,
            wait=wait,
        )
    except StratumError as exc:
        _fail(exc)


@main.group()
def definitions() -> None:
    """Metric definitions stored in a running Stratum (versions, applied live)."""


@definitions.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--url", default=None, help="Stratum API (default from settings).")
@click.option("--token", default=None, help="Admin token (default from settings).")
@click.option("--reason", default="", help="Why: kept with the version.")
@click.option("--author", default="cli", help="Who: kept with the version.")
def definitions_import(
    file: Path, url: str | None, token: str | None, reason: str, author: str
) -> None:
    """Make FILE the current definitions (a new version). Metric changes apply without a
    restart; a source added or changed is read once the workers restart (it says so)."""
    from stratum.app.admin_client import import_definitions

    settings = _settings()
    try:
        applied = import_definitions(
            url or settings.api_url,
            token or settings.api.admin_token,
            file.read_text(encoding="utf-8"),
            author=author,
            reason=reason or f"imported from {file}",
        )
    except StratumError as exc:
        _fail(exc)
    click.echo(f"version {applied['version']}: {applied['change']}")
    for job in applied["jobs"]:
        click.echo(f"  {job['kind']} job {job['job_id']} {job['state']}")
    for notice in applied.get("restart_needed") or []:
        click.echo(f"  restart needed: {notice}")


@definitions.command("export")
@click.option("--url", default=None, help="Stratum API (default from settings).")
@click.option("--token", default=None, help="Admin token (default from settings).")
def definitions_export(url: str | None, token: str | None) -> None:
    """Print the current definitions as a definitions file (TOML)."""
    from stratum.app.admin_client import export_definitions

    settings = _settings()
    try:
        current = export_definitions(url or settings.api_url, token or settings.api.admin_token)[
            "current"
        ]
    except StratumError as exc:
        _fail(exc)
    click.echo(
        f"# definitions version {current['version']} ({current['created_at']}, "
        f"{current['author']}: {current['change']})"
    )
    click.echo(current["toml"], nl=False)
