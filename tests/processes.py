"""Stratum as separate processes, for tests where a process must own its chDB engine or
must die: a tansu broker the test starts itself, ``stratum <role>`` children with their
own environment, and reads of a chDB path from a short child process (the pytest
process already holds the session's chDB engine, and a process gets only one)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from stratum.broker import EmbeddedBroker
from stratum.settings import KafkaSettings
from stratum.topics import ensure_topics


@contextmanager
def running_broker(log_dir: Path, partitions: int = 4) -> Iterator[EmbeddedBroker]:
    """A tansu broker with Stratum's topics created, stopped (and resumed) at exit."""
    for _ in range(3):
        broker = EmbeddedBroker(log_dir)
        broker.start()
        time.sleep(0.3)  # a tansu that lost its port to another process exits at once
        if broker.running:
            break
        broker.stop()
    else:
        raise AssertionError(f"tansu would not stay up; see {log_dir / 'broker.log'}")
    try:
        asyncio.run(ensure_topics(KafkaSettings(partitions=partitions), broker.bootstrap))
        yield broker
    finally:
        process = broker._process  # noqa: SLF001 - a paused broker cannot be stopped
        if process is not None and process.poll() is None:
            os.kill(process.pid, signal.SIGCONT)
        broker.stop()


def broker_pid(broker: EmbeddedBroker) -> int:
    process = broker._process  # noqa: SLF001 - tests pause and resume it
    assert process is not None and process.poll() is None
    return process.pid


def stratum_env(workdir: Path, **variables: str) -> dict[str, str]:
    """The parent's environment without any STRATUM_* setting, plus ``variables``; the
    child's temp dir (its heartbeat file) is its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATUM_")}
    tmp = workdir / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    env["TMPDIR"] = str(tmp)
    env.update(variables)
    return env


class StratumProcess:
    """One ``stratum <role>`` child; its output goes to ``<workdir>/<role>-<n>.log``.
    With ``new_session`` it leads its own process group, which :meth:`signal` signals
    as a terminal's Ctrl-C or a service manager would."""

    def __init__(
        self, role: str, env: dict[str, str], workdir: Path, *args: str, new_session: bool = False
    ) -> None:
        self.role = role
        self.new_session = new_session
        self.env = env
        self.workdir = workdir
        self.args = args
        self.runs = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"{role}-0.log"

    def start(self) -> None:
        self.runs += 1
        self.log_path = self.workdir / f"{self.role}-{self.runs}.log"
        with self.log_path.open("wb") as out:
            self.process = subprocess.Popen(  # noqa: S603 - our own CLI
                [
                    sys.executable,
                    "-c",
                    "from stratum.app.cli import main; main()",
                    self.role,
                    *self.args,
                ],
                env=self.env,
                cwd=self.workdir,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=self.new_session,
            )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the child (to its whole process group with ``new_session``)."""
        assert self.process is not None
        if self.new_session:
            os.killpg(self.process.pid, sig)
        else:
            self.process.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL: no flush, no commit, no goodbye to the consumer group."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM and wait; SIGKILL if it does not exit in time. Returns the exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return int(self.process.returncode)


READ_SCRIPT = """
import sys, orjson, clickhouse_connect
client = clickhouse_connect.get_client(dsn=sys.argv[1])
result = client.query(sys.argv[2])
print(orjson.dumps([list(r) for r in result.result_rows], default=str).decode())
"""


def query_chdb(path: Path, sql: str, timeout_s: float = 60.0) -> list[list[Any]]:
    """Rows of ``sql`` on the chDB files at ``path``, read by a child process."""
    result = subprocess.run(  # noqa: S603 - our own script
        [sys.executable, "-c", READ_SCRIPT, f"chdb://{path}", sql],
        capture_output=True,
        timeout=timeout_s,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-3000:]
    rows: list[list[Any]] = orjson.loads(result.stdout.splitlines()[-1])
    return rows


async def committed_offsets(
    bootstrap: str, group: str, topic: str, partitions: int
) -> dict[int, int]:
    """The consumer group's committed offset per partition of ``topic`` (next to read).
    Partitions are named: tansu cannot answer the "all partitions" form of OffsetFetch."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(
            group, partitions=[TopicPartition(topic, p) for p in range(partitions)]
        )
    finally:
        await admin.close()
    return {
        tp.partition: meta.offset
        for tp, meta in offsets.items()
        if isinstance(tp, TopicPartition) and tp.topic == topic and meta.offset >= 0
    }


def wait_for_log(process: StratumProcess, text: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if text in process.log():
            return True
        if not process.running:
            return False
        time.sleep(0.1)
    return False
