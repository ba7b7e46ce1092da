"""What every benchmark shares: the figure record, printing, the results file, a broker
with pre-loaded topics, synthetic events, and process measurements.

Each benchmark module runs in its own process (chDB allows one engine per process, and a
fresh process keeps one benchmark's threads and memory out of the next one's figures).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results.jsonl"
PROFILES = Path(__file__).resolve().parent / "profiles"


@dataclass
class Figure:
    """One measured figure next to its baseline, measured in the same run."""

    bench: str
    name: str
    unit: str
    stratum: float | None
    baseline: float | None = None
    baseline_name: str = ""
    target: str = ""
    met: bool | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        """Stratum / baseline: above 1 is faster for rates, slower for latencies."""
        if self.stratum is None or not self.baseline:
            return None
        return self.stratum / self.baseline

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ratio"] = self.ratio
        return data


def fmt(value: float | None, unit: str = "") -> str:
    """Human-sized numbers: 1.23 M, 456 K, 12.3, 0.045."""
    if value is None:
        return "n/a"
    magnitude = abs(value)
    if magnitude >= 1e6:
        text = f"{value / 1e6:.2f} M"
    elif magnitude >= 1e4:
        text = f"{value / 1e3:.0f} K"
    elif magnitude >= 100:
        text = f"{value:.0f}"
    elif magnitude >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".strip()


def show(figures: Sequence[Figure]) -> None:
    """Print figures as they come: Stratum, baseline, ratio, target."""
    for f in figures:
        ratio = "" if f.ratio is None else f"  ratio {f.ratio:.2f}"
        base = ""
        if f.baseline_name:
            base = f"  baseline ({f.baseline_name}) {fmt(f.baseline, f.unit)}"
        target = ""
        if f.target:
            verdict = {True: "met", False: "MISSED", None: "-"}[f.met]
            target = f"  target {f.target}: {verdict}"
        print(
            f"[{f.bench}] {f.name}: {fmt(f.stratum, f.unit)}{base}{ratio}{target}"
            + (f"  ({f.note})" if f.note else ""),
            flush=True,
        )


def git_commit() -> tuple[str, bool]:
    """HEAD and whether the work tree differs from it (read-only git)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=ROOT,
            capture_output=True,  # noqa: S607
            text=True,
            check=True,
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],  # noqa: S607
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown", False
    return head, dirty


def append_results(
    figures: Sequence[Figure], *, quick: bool, run_id: str, path: Path = RESULTS
) -> None:
    """One JSON line per figure, tagged with the commit, so runs compare over time."""
    commit, dirty = git_commit()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with path.open("a", encoding="utf-8") as out:
        for f in figures:
            record = {
                "run_id": run_id,
                "timestamp": stamp,
                "commit": commit,
                "dirty": dirty,
                "quick": quick,
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                **f.as_dict(),
            }
            out.write(json.dumps(record, sort_keys=False) + "\n")


def bench_parser(description: str) -> argparse.ArgumentParser:
    """The arguments every benchmark module takes when run on its own."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    parser.add_argument("--emit", type=Path, help="write the figures as JSON to this file")
    return parser


def emit(figures: Sequence[Figure], path: Path | None) -> None:
    show(figures)
    if path is not None:
        path.write_text(json.dumps([f.as_dict() for f in figures]), encoding="utf-8")


def load_figures(path: Path) -> list[Figure]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return [Figure(**{k: v for k, v in d.items() if k != "ratio"}) for d in data]


def median(values: Sequence[float]) -> float:
    return float(np.median(np.asarray(values, dtype=float)))


def median_pair(stratum: Sequence[float], baseline: Sequence[float]) -> tuple[float, float]:
    """The (Stratum, baseline) pair of the run whose ratio is the median ratio. Runs are
    measured back to back, so the ratio pair by pair holds when the machine's speed
    drifts between runs; medians taken separately would mix different runs."""
    pairs = sorted(zip(stratum, baseline, strict=True), key=lambda p: p[0] / p[1] if p[1] else 0)
    return pairs[(len(pairs) - 1) // 2]


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    return float(np.percentile(np.asarray(values, dtype=float), q))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds() -> float:
    """User + system CPU of this process so far, every thread included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def thread_cpu_seconds() -> dict[str, float]:
    """CPU seconds of this process so far by thread name (``/proc``; threads of one name
    summed): tells Python's threads from the in-process ClickHouse engine's."""
    tick = os.sysconf("SC_CLK_TCK")
    totals: dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        totals[name] = totals.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return totals


def peak_rss_mib(pid: int | None = None) -> float | None:
    """Peak resident set (VmHWM) of a live process, MiB."""
    try:
        status = Path(f"/proc/{pid or os.getpid()}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


# --- synthetic events -------------------------------------------------------------------

COUNTRIES = np.array(["DE", "FR", "US", "GB", "ES", "IT", "NL", "PL", "SE", "JP"])
COUNTRY_P = np.array([18, 12, 25, 10, 7, 7, 5, 5, 3, 8], dtype=float)
DEVICES = np.array(["ios", "android", "desktop", "tablet"])
DEVICE_P = np.array([30, 35, 28, 7], dtype=float)
PAGES = np.array(["/", "/search", "/product", "/cart", "/checkout", "/account", "/help"])
TYPES = np.array(["page_view", "click", "add_to_cart", "purchase"])
TYPE_P = np.array([60, 25, 10, 5], dtype=float)
LATENCY_BASE = np.array([110.0, 140.0, 80.0, 120.0])


def synthetic_events(
    n: int, start_ms: int, end_ms: int, *, seed: int = 7, id_prefix: str = "e"
) -> list[dict[str, Any]]:
    """``n`` events in event-time order between ``start_ms`` and ``end_ms``, shaped like
    the demo generator's (type, user_id, country, device, page, latency_ms, amount),
    drawn with numpy because the demo generator makes ~45 K events/s."""
    rng = np.random.default_rng(seed)
    ts = np.sort(rng.integers(start_ms, end_ms, size=n))
    kind = rng.choice(len(TYPES), size=n, p=TYPE_P / TYPE_P.sum())
    country = rng.choice(len(COUNTRIES), size=n, p=COUNTRY_P / COUNTRY_P.sum())
    device = rng.choice(len(DEVICES), size=n, p=DEVICE_P / DEVICE_P.sum())
    page = rng.integers(0, len(PAGES), size=n)
    users = rng.integers(0, 50_000, size=n)
    latency = np.round(rng.lognormal(0, 0.5, size=n) * LATENCY_BASE[device], 1)
    amount = np.round(rng.lognormal(3.3, 0.7, size=n), 2)
    types, countries, devices = (
        TYPES[kind].tolist(),
        COUNTRIES[country].tolist(),
        DEVICES[device].tolist(),
    )
    pages = PAGES[page].tolist()
    events: list[dict[str, Any]] = []
    append = events.append
    for i, (t, k, c, d, p, u, lat, amt) in enumerate(
        zip(
            ts.tolist(),
            types,
            countries,
            devices,
            pages,
            users.tolist(),
            latency.tolist(),
            amount.tolist(),
            strict=True,
        )
    ):
        event = {
            "event_id": f"{id_prefix}{i}",
            "ts": t,
            "type": k,
            "user_id": f"u{u}",
            "country": c,
            "device": d,
            "page": "/checkout" if k == "purchase" else p,
            "latency_ms": lat,
        }
        if k == "purchase":
            event["amount"] = amt
        append(event)
    return events


# --- the log -----------------------------------------------------------------------------


@contextmanager
def broker(workdir: Path, topics: Sequence[str] = (), partitions: int = 4) -> Iterator[str]:
    """An embedded tansu broker with Stratum's topics (and ``topics``) created explicitly;
    stopped on exit. Yields the bootstrap address."""
    from stratum.broker import EmbeddedBroker
    from stratum.settings import KafkaSettings
    from stratum.topics import ensure_topics

    tansu = EmbeddedBroker(workdir)
    tansu.start()
    try:
        asyncio.run(ensure_topics(KafkaSettings(partitions=partitions), tansu.bootstrap))
        for topic in topics:
            asyncio.run(
                ensure_topics(KafkaSettings(topic=topic, partitions=partitions), tansu.bootstrap)
            )
        yield tansu.bootstrap
    finally:
        tansu.stop()


async def produce(
    bootstrap: str, topic: str, messages: Sequence[tuple[int, bytes]]
) -> dict[int, int]:
    """Produce ``(partition, value)`` messages; returns the last offset written per
    partition, from the produce acknowledgements (tansu's end offsets are wrong for
    batched writes, its acknowledgements are not)."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        max_batch_size=1024 * 1024,
        max_request_size=8 * 1024 * 1024,
        enable_idempotence=False,
    )
    await producer.start()
    last: dict[int, int] = {}
    try:
        futures = []
        for partition, value in messages:
            futures.append(await producer.send(topic, value, partition=partition))
        for meta in await asyncio.gather(*futures):
            last[meta.partition] = max(last.get(meta.partition, -1), meta.offset)
    finally:
        await producer.stop()
    return last


def run_child(
    module: str,
    *args: str,
    timeout_s: float,
    env: dict[str, str] | None = None,
    profile: str | None = None,
) -> dict[str, Any]:
    """Run ``python -m module args``; its last stdout line is a JSON result. With
    ``profile``, py-spy samples the child into ``benchmarks/profiles/<profile>.*``."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=ROOT,  # noqa: S603
            stdout=out,
            stderr=err,
            env={**os.environ, **(env or {})},
        )
        spy = (
            Profile(proc.pid, profile, f"python -m {module} {' '.join(args)[:200]}")
            if profile
            else None
        )
        try:
            code = proc.wait(timeout=timeout_s)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if spy is not None:
                spy.finish()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if code != 0 or not lines:
        raise RuntimeError(
            f"{module} {' '.join(args)} failed ({code}):\n{stdout[-2000:]}\n{stderr[-4000:]}"
        )
    result: dict[str, Any] = json.loads(lines[-1])
    return result


# --- Stratum as a child process ------------------------------------------------------------


class StratumChild:
    """``stratum <role>`` in a child process with its own data dir and port; stopped (and
    its broker with it) on exit. ``peak_rss_mib()`` reads its VmHWM while it lives."""

    def __init__(
        self, role: str, workdir: Path, *args: str, env: dict[str, str] | None = None
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.log_path = workdir / f"stratum-{role}.log"
        self.argv = [sys.executable, "-c", "from stratum.app.cli import main; main()", role, *args]
        base = {k: v for k, v in os.environ.items() if not k.startswith("STRATUM_")}
        self.env = {
            **base,
            "STRATUM_DATA_DIR": str(workdir / "data"),
            "STRATUM_API__PORT": str(self.port),
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def __enter__(self) -> StratumChild:
        self.started_at = time.perf_counter()
        with self.log_path.open("wb") as out:
            self.process = subprocess.Popen(
                self.argv,
                cwd=self.workdir,
                env=self.env,  # noqa: S603
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_http(self, timeout_s: float = 60.0) -> float:
        """Seconds from start until the API answers; raises if the child died."""
        import httpx

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(
                    f"stratum exited early; see {self.log_path}:\n"
                    + self.log_path.read_text()[-3000:]
                )
            try:
                if httpx.get(f"{self.url}/v1/health", timeout=1.0).status_code < 600:
                    return time.perf_counter() - self.started_at
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"stratum did not serve HTTP within {timeout_s:.0f} s")

    def children_rss_mib(self) -> float:
        """Resident memory of the child's own children now (the embedded broker)."""
        import psutil

        try:
            kids = psutil.Process(self.pid).children(recursive=True)
            return sum(k.memory_info().rss for k in kids) / 2**20
        except psutil.Error:
            return 0.0

    def cpu_seconds(self) -> float:
        import psutil

        times = psutil.Process(self.pid).cpu_times()
        return float(times.user + times.system)

    def stop(self, timeout_s: float = 20.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(2)  # SIGINT: the CLI stops its parts and the broker in order
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout_s)


# --- profiles ------------------------------------------------------------------------------


class Profile:
    """py-spy (``pip install py-spy``; not a project dependency) sampling a process and
    all its threads until :meth:`finish`, which writes a summary next to the stacks."""

    def __init__(self, pid: int, name: str, title: str) -> None:
        PROFILES.mkdir(parents=True, exist_ok=True)
        self.collapsed = PROFILES / f"{name}.collapsed"
        self.summary = PROFILES / f"{name}.txt"
        self.title = title
        self.process = subprocess.Popen(  # noqa: S603
            [
                "py-spy",
                "record",
                "--pid",
                str(pid),
                "--rate",
                "100",
                "--threads",  # noqa: S607
                "--format",
                "raw",
                "--output",
                str(self.collapsed),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def finish(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(2)  # py-spy writes its output on SIGINT
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.collapsed.exists():
            summarize_profile(self.collapsed, self.summary, self.title)
            print(f"  profile: {self.summary.relative_to(ROOT)}", flush=True)


# Where a sample's time goes, first match wins (a substring of the whole stack).
BUCKETS = (
    (
        "idle: waiting (event loop select, thread pools, locks)",
        (
            "EpollSelector.select",
            "Condition.wait",
            "_worker (concurrent/futures/thread.py)$",
            "Event.wait",
        ),
    ),
    ("start-up: imports, app and engine set-up", ("_find_and_load", "create_speed_layer (")),
    ("archive: write Parquet", ("ArchiveWorker._write", "write_frame", "write_partition_range")),
    ("decode messages (once, for both sinks)", ("decode_messages", "decode_message")),
    (
        "speed: dedup and distinct hashes",
        ("PartitionAggregator._unseen", "PartitionAggregator._with_hashes"),
    ),
    ("speed: fold groups into windows (Python)", ("PartitionAggregator._apply_groups",)),
    ("speed: aggregate (Polars)", ("PartitionAggregator.add_frame",)),
    (
        "speed: flush, build rows (drain, Arrow)",
        ("PartitionAggregator.drain", "SpeedStore.prepare", "SpeedStore.window_table"),
    ),
    ("speed: flush, ClickHouse inserts", ("SpeedStore.commit", "SpeedWorker._write")),
    ("speed: other per-message work (queue, telemetry, acks, late)", ("SpeedWorker",)),
    ("serving: API reads", ("MetricReader", "serving/")),
    ("ClickHouse, other calls", ("chdb", "clickhouse_connect")),
    ("Faust / aiokafka / mode machinery", ("faust/", "aiokafka/", "mode/")),
)


def _bucket(stack: str, frames: list[str]) -> str:
    for label, needles in BUCKETS:
        for needle in needles:
            if needle.endswith("$"):
                if frames and frames[-1] == needle[:-1]:
                    return label
            elif needle in stack:
                return label
    return "other"


def summarize_profile(collapsed: Path, out: Path, title: str, top: int = 40) -> None:
    """A readable summary of collapsed stacks: where the samples go by component, then
    per function, inclusive and self, over every thread (waits included, so the shares
    are of wall time summed over threads)."""
    import re
    from collections import Counter

    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    buckets: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")[1:]]
        for frame in set(frames):
            inclusive[frame] += samples
        if frames:
            own[frames[-1]] += samples
        buckets[_bucket(stack, frames)] += samples
    busy = total - sum(n for b, n in buckets.items() if b.startswith("idle"))
    lines = [
        title,
        f"{total} samples at 100 Hz over all threads",
        "",
        "by component (share of all samples; of the busy ones):",
    ]
    lines += [
        f"{n / total:6.1%} {n / max(busy, 1):6.1%}  {b}"
        if not b.startswith("idle")
        else f"{n / total:6.1%}      -  {b}"
        for b, n in buckets.most_common()
    ]
    lines += ["", "inclusive:"] + [f"{n / total:6.1%}  {f}" for f, n in inclusive.most_common(top)]
    lines += ["", "self:"] + [f"{n / total:6.1%}  {f}" for f, n in own.most_common(top)]
    out.write_text("\n".join(lines) + "\n")


class Instrumented:
    """pyinstrument (``pip install pyinstrument``; not a project dependency) around a
    block of this process, its text report saved as ``benchmarks/profiles/<name>.txt``."""

    def __init__(self, name: str, enabled: bool = True) -> None:
        self.name = name
        self.profiler: Any = None
        if enabled:
            from pyinstrument import Profiler

            self.profiler = Profiler(interval=0.001)

    def __enter__(self) -> Instrumented:
        if self.profiler is not None:
            self.profiler.start()
        return self

    def pause(self) -> None:
        """Stop sampling until :meth:`resume` (or ``__enter__``): samples add up."""
        if self.profiler is not None and self.profiler.is_running:
            self.profiler.stop()

    def resume(self) -> None:
        if self.profiler is not None and not self.profiler.is_running:
            self.profiler.start()

    def __exit__(self, *_: object) -> None:
        if self.profiler is None:
            return
        self.pause()
        PROFILES.mkdir(parents=True, exist_ok=True)
        path = PROFILES / f"{self.name}.txt"
        path.write_text(self.profiler.output_text(unicode=False, color=False, show_all=False))
        print(f"  profile: {path.relative_to(ROOT)}", flush=True)
        self.profiler = None
