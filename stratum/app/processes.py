"""``stratum worker`` and ``stratum batch``: the speed layer with its archiver, and the
batch scheduler, each as its own process, started as ``stratum up`` starts them
(:mod:`stratum.app.roles`) and reporting their health by heartbeat."""

from __future__ import annotations

import asyncio
import logging
import signal
from contextlib import AsyncExitStack

from stratum.app.heartbeat import heartbeat
from stratum.app.roles import LogConnection, speed_probe, start_batch, start_speed
from stratum.health import Probe
from stratum.metrics import MetricCatalog, load_catalog
from stratum.settings import Settings
from stratum.storage import open_storage
from stratum.storage.definitions import startup_catalog

log = logging.getLogger("stratum.worker")


async def run_worker(settings: Settings) -> None:
    """Until SIGTERM/SIGINT: the speed layer and archiver (and the replay runner when
    ``settings.speed.run_replays``) on the configured log."""
    storage = open_storage(settings)
    try:  # the stored definitions win over the file once seeded (stratum.storage.definitions)
        binding, catalog = startup_catalog(
            storage, load_catalog(settings.metrics_file), str(settings.metrics_file)
        )
    finally:
        storage.close()
    async with AsyncExitStack() as stack:
        log_conn = LogConnection(settings)
        await log_conn.start()
        stack.callback(log_conn.stop)
        speed = await start_speed(settings, catalog, log_conn, stack, binding.version)
        log.info("worker consuming %s from %s", settings.kafka.topic, log_conn.bootstrap)
        await _until_signalled("worker", speed_probe(speed))


async def run_batch(settings: Settings, catalog: MetricCatalog | None = None) -> None:
    """Until SIGTERM/SIGINT or cancellation: the batch scheduler."""
    async with AsyncExitStack() as stack:
        _, probe = start_batch(settings, catalog or load_catalog(settings.metrics_file), stack)
        await _until_signalled("batch", probe)


async def _until_signalled(role: str, probe: Probe) -> None:
    """Write ``role``'s heartbeat until SIGTERM or SIGINT; the handlers are removed after
    (where the loop cannot have them, e.g. not the main thread, only cancellation ends)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread, or a platform without signal handlers
    beat = asyncio.create_task(heartbeat(role, probe))
    try:
        await stop.wait()
    finally:
        beat.cancel()
        for sig in handled:
            loop.remove_signal_handler(sig)
