"""The Faust app: owns consumption, partition assignment and offsets; the work per message
is in :mod:`speed_layer.workers`.

One agent reads the events topic with manual acknowledgement and hands each message to
the :class:`SpeedWorker`; each ``[[source]]`` some metric reads has its own agent on its
topic and its own worker (its metrics, its mapping, its archive directory). A message
there is what one fetch brought of one partition (:mod:`speed_layer.batch_delivery`), so
Faust's per-message cost is paid per fetch. A worker decodes messages once for both
sinks: the windows (ClickHouse) and the archive
(Parquet). It acknowledges a message, so Faust commits its offset,
only when both its window rows and its archive file are stored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import faust
from faust.sensors import Monitor

from speed_layer.batch_delivery import QUEUE_MAXSIZE, BatchDeliveryTransport
from speed_layer.store import SpeedStore
from speed_layer.workers import ArchiveWorker, SpeedWorker, defined_sources
from stratum.kafka_security import faust_credentials
from stratum.long_lived import freeze_startup_objects, unfreeze
from stratum.metrics import MetricCatalog
from stratum.producer import EventProducer
from stratum.settings import Settings
from stratum.sources import BUILTIN, SourceMapper
from stratum.storage import Storage, generations, open_storage

log = logging.getLogger(__name__)
Tick = Callable[[], Awaitable[None]]


class QuietMonitor(Monitor):
    """Faust's Monitor without its four hooks on every message: their counters and timings
    feed Faust's web views, which Stratum turns off (its own metrics are Prometheus', per
    batch). Per-fetch and per-commit bookkeeping the consumer asks of it stays. About 2 µs
    a message (of ~80 µs then; ~40 µs since :mod:`speed_layer.delivery`)."""

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        return None

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        return None

    def on_stream_event_out(
        self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None
    ) -> None:
        return None

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        return None


@dataclass
class SpeedLayer:
    app: faust.App
    speed: SpeedWorker
    archiver: ArchiveWorker
    producer: EventProducer
    sources: dict[str, SpeedWorker]  # source name -> its worker (the built-in one too)
    # sources not consumed, as their topic is missing: name -> why (worker health says it)
    unavailable: dict[str, str] = field(default_factory=dict)

    async def start(self) -> None:
        freeze_startup_objects()
        await self.producer.start()
        await self.app.start()

    async def stop(self) -> None:
        try:
            for worker in self.sources.values():
                await worker.flush()
                await worker.flush_archive()
        finally:
            await self.app.stop()
            await self.producer.stop()
            unfreeze()


def create_speed_layer(
    settings: Settings,
    catalog: MetricCatalog,
    storage: Storage,
    bootstrap: str,
    log_epoch: str,
    generation: int | None = None,
    unavailable: Mapping[str, str] | None = None,
) -> SpeedLayer:
    """``unavailable``: sources to leave unread, with why (their topic is missing: a
    Faust agent subscribing to it would make a broker that auto-creates topics create
    it, and Stratum never creates a source's topic)."""
    unavailable = dict(unavailable or {})
    speed_settings = settings.speed
    app = faust.App(
        speed_settings.consumer_group,
        broker=f"kafka://{bootstrap}",
        broker_credentials=faust_credentials(settings.kafka),
        value_serializer="raw",
        key_serializer="raw",
        datadir=str(settings.data_dir / "faust"),
        web_enabled=False,
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=speed_settings.session_timeout_s,
        broker_heartbeat_interval=speed_settings.heartbeat_interval_s,
        broker_commit_interval=1.0,
        stream_wait_empty=False,
        consumer_max_fetch_size=8 * 1024 * 1024,  # per partition; Faust's default is 1 MiB
        autodiscover=False,
        monitor=QuietMonitor(),
    )
    app.transport = BatchDeliveryTransport(app.conf.broker_consumer, app)
    producer = EventProducer(settings.kafka, bootstrap)
    if generation is None:
        generation = generations.live_generation(storage)
    archiver = ArchiveWorker(settings, log_epoch)
    speed = SpeedWorker(
        settings,
        catalog.for_source(BUILTIN),
        SpeedStore(storage, generation),
        producer,
        log_epoch,
        archiver,
    )
    workers = {BUILTIN: speed}
    topics = {settings.kafka.topic: speed}
    for name in catalog.source_names[1:]:
        source = catalog.source(name)
        assert source is not None
        if source.topic in (
            settings.kafka.topic,
            settings.kafka.late_topic,
            settings.kafka.dead_letter_topic,
        ):
            raise ValueError(f"source {name!r}: topic {source.topic!r} is one of Stratum's own")
        if name in unavailable:
            continue
        # its own ClickHouse client: each client serialises its calls (FIELD-NOTES)
        worker = SpeedWorker(
            settings,
            catalog.for_source(name),
            SpeedStore(open_storage(settings), generation),
            producer,
            source.log_id(log_epoch if settings.kafka.embedded else None),
            mapper=SourceMapper(source),
        )
        workers[name] = topics[source.topic] = worker

    for worker in workers.values():
        worker.defined_sources = defined_sources(catalog)
    for topic_name, worker in topics.items():
        partitions = settings.kafka.partitions if worker is speed else None
        _agent(
            app,
            app.topic(
                topic_name, value_serializer="raw", maxsize=QUEUE_MAXSIZE, partitions=partitions
            ),
            worker,
        )

    # An exception escaping a Faust task crashes the whole app: contain and log it.
    @every(app, speed_settings.flush_interval_s)
    async def flush_speed() -> None:
        for worker in workers.values():
            try:
                await worker.flush()
            except Exception:
                log.exception(
                    "speed flush of %s failed unexpectedly; retrying at the next tick",
                    worker.source,
                )

    @every(app, settings.archive.flush_interval_s)
    async def flush_archive() -> None:
        for worker in workers.values():
            try:
                await worker.flush_archive()
            except Exception:
                log.exception(
                    "archive flush of %s failed unexpectedly; retrying at the next tick",
                    worker.source,
                )

    # mode types a handler as taking any positionals; Faust sends exactly one, the set.
    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def on_assigned(sender: Any, assigned: set[Any], **_: Any) -> None:
        for topic_name, worker in topics.items():
            worker.assigned = {tp.partition for tp in assigned if tp.topic == topic_name}

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(sender: Any, revoked: set[Any], **_: Any) -> None:
        for topic_name, worker in topics.items():
            mine = {tp.partition for tp in revoked if tp.topic == topic_name}
            if mine:
                await worker.flush()
                await worker.flush_archive()
                worker.forget(mine)

    return SpeedLayer(
        app=app,
        speed=speed,
        archiver=archiver,
        producer=producer,
        sources=workers,
        unavailable=unavailable,
    )


def next_run_at(scheduled_at: float, interval_s: float, now: float) -> float:
    """A fixed-rate schedule: one interval after the run that was due, or at once when
    that time has passed (a late run is not made up for with a burst)."""
    return max(scheduled_at + interval_s, now)


def every(app: faust.App, interval_s: float) -> Callable[[Tick], Tick]:
    """Run the decorated coroutine every ``interval_s`` from start to start, as a Faust
    task (it starts once the worker is ready and stops with it). Faust's own timer sleeps
    the interval after each run, so under load a 0.5 s flush interval gave 1.3-1.5
    flushes a second, not 2."""

    def register(tick: Tick) -> Tick:
        async def run_every() -> None:
            due = time.monotonic() + interval_s
            while True:  # Service.sleep returns early once the app is stopping
                await app.sleep(max(0.0, due - time.monotonic()))
                if app.should_stop:
                    return
                await tick()
                due = next_run_at(due, interval_s, time.monotonic())

        run_every.__qualname__ = f"every({interval_s} s, {tick.__qualname__})"
        app.task(run_every)
        return tick

    return register


def _agent(app: faust.App, topic: Any, worker: SpeedWorker) -> None:
    """One Faust agent per topic, acknowledging by hand (:class:`SpeedWorker`)."""

    async def consume(stream: Any) -> None:
        manual = stream.noack()
        worker.acks.stream = manual
        async for event in manual.events():
            await worker.handle(event)

    name = "speed" if worker.source == BUILTIN else f"speed-{worker.source}"
    app.agent(topic, name=name)(consume)
