"""``stratum worker``: the Faust speed layer and archiver as their own process."""

from __future__ import annotations

import asyncio
import logging
import signal

from stratum.metrics import load_catalog
from stratum.platform import LogConnection, heartbeat, retire_dead_epochs, worker_health
from stratum.settings import Settings
from stratum.storage import open_storage
from stratum.storage.definitions import startup_catalog

log = logging.getLogger("stratum.worker")


async def run_worker(settings: Settings) -> None:
    from speed_layer.app import create_speed_layer

    binding, catalog = startup_catalog(open_storage(settings),
                                       load_catalog(settings.metrics_file),
                                       str(settings.metrics_file))
    log_conn = LogConnection(settings)
    await log_conn.start()
    await retire_dead_epochs(settings, catalog, log_conn)
    speed = create_speed_layer(settings, catalog, open_storage(settings), log_conn.bootstrap,
                               log_conn.epoch)
    for worker in speed.sources.values():  # the built-in one and each source's
        worker.definitions_version = binding.version
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(speed.start())
    replays = None
    if settings.speed.run_replays:
        from speed_layer.replay_service import ReplayService

        replays = asyncio.create_task(ReplayService(
            settings, catalog, open_storage(settings), log_conn.bootstrap, log_conn.epoch
        ).run_forever())
    beat = asyncio.create_task(heartbeat("worker", lambda: worker_health(speed.speed)))
    log.info("worker consuming %s from %s", settings.kafka.topic, log_conn.bootstrap)
    try:
        await stop.wait()
    finally:
        if replays is not None:
            replays.cancel()
        beat.cancel()
        await speed.stop()
        task.cancel()
        log_conn.stop()
