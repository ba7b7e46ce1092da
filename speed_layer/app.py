"""The Faust app: owns consumption, partition assignment and offsets; the work per message
is in :mod:`speed_layer.workers`.

One agent reads the events topic with manual acknowledgement and hands each message to
the :class:`SpeedWorker`; a message there is what one fetch brought of one partition
(:mod:`speed_layer.batch_delivery`), so Faust's per-message cost is paid per fetch. The
worker decodes messages once for both sinks: the windows (ClickHouse) and the archive
(Parquet). It acknowledges a message, so Faust commits its offset,
only when both its window rows and its archive file are stored.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import faust
from faust.sensors import Monitor

from ingest.producer import EventProducer
from speed_layer.batch_delivery import QUEUE_MAXSIZE, BatchDeliveryTransport
from speed_layer.store import SpeedStore
from speed_layer.workers import ArchiveWorker, SpeedWorker
from stratum.kafka_security import faust_credentials
from stratum.long_lived import freeze_startup_objects, unfreeze
from stratum.metrics import MetricCatalog
from stratum.settings import Settings
from stratum.storage import Storage, generations

log = logging.getLogger(__name__)


class QuietMonitor(Monitor):
    """Faust's Monitor without its four hooks on every message: their counters and timings
    feed Faust's web views, which Stratum turns off (its own metrics are Prometheus', per
    batch). Per-fetch and per-commit bookkeeping the consumer asks of it stays. About 2 µs
    a message (of ~80 µs then; ~40 µs since :mod:`speed_layer.delivery`)."""

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        return None

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        return None

    def on_stream_event_out(self, tp: Any, offset: int, stream: Any, event: Any,
                            state: Any = None) -> None:
        return None

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        return None


@dataclass
class SpeedLayer:
    app: faust.App
    speed: SpeedWorker
    archiver: ArchiveWorker
    producer: EventProducer

    async def start(self) -> None:
        freeze_startup_objects()
        await self.producer.start()
        await self.app.start()

    async def stop(self) -> None:
        try:
            await self.speed.flush()
            await self.speed.flush_archive()
        finally:
            await self.app.stop()
            await self.producer.stop()
            unfreeze()


def create_speed_layer(settings: Settings, catalog: MetricCatalog, storage: Storage,
                       bootstrap: str, log_epoch: str, generation: int | None = None
                       ) -> SpeedLayer:
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
    events_topic = app.topic(settings.kafka.topic, value_serializer="raw",
                             partitions=settings.kafka.partitions, maxsize=QUEUE_MAXSIZE)
    producer = EventProducer(settings.kafka, bootstrap)
    if generation is None:
        generation = generations.live_generation(storage)
    archiver = ArchiveWorker(settings, log_epoch)
    speed = SpeedWorker(settings, catalog, SpeedStore(storage, generation), producer, log_epoch,
                        archiver)

    @app.agent(events_topic, name="speed")
    async def speed_agent(stream: Any) -> None:
        manual = stream.noack()
        speed.acks.stream = manual
        async for event in manual.events():
            await speed.handle(event)

    # An exception escaping a Faust timer crashes the whole app: contain and log it.
    @app.timer(interval=speed_settings.flush_interval_s)
    async def flush_speed() -> None:
        try:
            await speed.flush()
        except Exception:
            log.exception("speed flush failed unexpectedly; retrying at the next tick")

    @app.timer(interval=settings.archive.flush_interval_s)
    async def flush_archive() -> None:
        try:
            await speed.flush_archive()
        except Exception:
            log.exception("archive flush failed unexpectedly; retrying at the next tick")

    @app.on_partitions_assigned.connect
    async def on_assigned(sender: Any, assigned: set[Any], **_: Any) -> None:
        speed.assigned = {tp.partition for tp in assigned if tp.topic == settings.kafka.topic}

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: Any, revoked: set[Any], **_: Any) -> None:
        mine = {tp.partition for tp in revoked if tp.topic == settings.kafka.topic}
        if mine:
            await speed.flush()
            await speed.flush_archive()
            speed.forget(mine)

    return SpeedLayer(app=app, speed=speed, archiver=archiver, producer=producer)
