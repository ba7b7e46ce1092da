"""Durable acceptance on the default ``stratum up`` (embedded broker, log in memory): a
202 survives SIGKILL, SIGINT and SIGTERM of the whole process group mid-stream.

One data dir, four runs: a steady stream of posts (50 events each, unique ids, event time
about 20 minutes back) is cut by SIGKILL, then (after a restart and a check) by SIGINT,
then by SIGTERM. After each restart, event by event: every event answered 202 is in the
Parquet archive exactly once (the one request in flight at a SIGKILL may be there or not,
never twice); then a full batch run, and the served totals equal the distinct archived
events, window by window where batch serves them.
"""

from __future__ import annotations

import re
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest

from stratum.archive import archive_root, list_files
from stratum.settings import DEV_ADMIN_TOKEN
from tests.ports import free_port
from tests.processes import StratumProcess, stratum_env
from tests.stack import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.integration]

MINUTE = 60_000
STREAM_S = 3.5  # shorter than the archive's 5 s flush: without the journal, all at risk
POST_EVERY_S = 0.02
METRIC = "accepted_events"
METRICS = f"""
[[metric]]
name = "{METRIC}"
aggregation = "count"
windows = ["1m"]
"""
DRAINED = re.compile(r"drained the log into windows and archive in ([0-9.]+) s")
RECOVERED = re.compile(
    r"journal recovery: epoch \d+: (\d+) acknowledged event\(s\) "
    r"journaled, (\d+) of them"
)


@dataclass
class Stream:
    """Posts 50-event batches from a thread until stopped; remembers the ids answered
    202 and those of requests sent but never answered (in flight when the process died);
    a refused connection sent nothing."""

    url: str
    tag: str
    accepted: list[str] = field(default_factory=list)
    unanswered: list[str] = field(default_factory=list)
    refused: int = 0
    error: BaseException | None = None
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        try:
            with httpx.Client(base_url=self.url, timeout=30.0) as client:
                batch = 0
                while not self.stop.is_set():
                    ids = [f"{self.tag}-{batch}-{i}" for i in range(50)]
                    ts = int(time.time() * 1000) - 20 * MINUTE
                    body = [
                        {"event_id": e, "ts": ts + i, "type": "durable"} for i, e in enumerate(ids)
                    ]
                    batch += 1
                    try:
                        response = client.post("/v1/events", json=body)
                    except httpx.ConnectError:
                        self.refused += 1
                        time.sleep(0.05)
                        continue
                    except httpx.TransportError:
                        self.unanswered += ids
                        continue
                    if response.status_code == 202:
                        assert response.json()["accepted"] == 50
                        self.accepted += ids
                    else:
                        assert response.status_code == 503, response.text
                        self.refused += 1
                    time.sleep(POST_EVERY_S)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc


def _archive(data_dir: Path) -> pl.DataFrame:
    files = list_files(archive_root(data_dir))
    if not files:
        return pl.DataFrame(schema={"event_id": pl.String, "ts": pl.Int64})
    return pl.concat([pl.read_parquet(f, columns=["event_id", "ts"]) for f in files]).with_columns(
        pl.col("ts").dt.epoch("ms")
    )


def _serving(url: str) -> bool:
    try:
        return httpx.get(f"{url}/v1/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _run_batch(client: httpx.Client) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {DEV_ADMIN_TOKEN}"}

    def submitted() -> str | None:
        response = client.post("/v1/admin/batch", json={"mode": "full"}, headers=headers)
        return response.json()["job_id"] if response.status_code == 202 else None

    job_id = wait_until(submitted, 60, "a batch job to be accepted", interval_s=1)

    def finished() -> dict[str, Any] | None:
        job = client.get(f"/v1/admin/jobs/{job_id}", headers=headers).json()
        return job if job["state"] in ("succeeded", "failed", "cancelled") else None

    job: dict[str, Any] = wait_until(finished, 60, f"batch job {job_id}")
    assert job["state"] == "succeeded", job
    return job


def _check(up: StratumProcess, data_dir: Path, acked: set[str], maybe: set[str]) -> dict[str, Any]:
    """After a restart: the archive, then a full batch run, then what is served."""
    archived = _archive(data_dir)
    counts = archived.group_by("event_id").len()
    lost = acked - set(archived["event_id"])
    twice = counts.filter(pl.col("len") > 1)["event_id"].to_list()
    strays = {e for e in archived["event_id"] if not e.startswith("marker-")} - acked - maybe
    assert not strays, sorted(strays)[:10]

    url = f"http://127.0.0.1:{up.env['STRATUM_API__PORT']}"
    with httpx.Client(base_url=url, timeout=30.0) as client:
        # A marker at the present moves the newest event time, so the batch horizon
        # (newest - lateness) passes every window of the stream; once it is archived,
        # no partition's archive is behind its speed layer.
        marker = f"marker-{time.time_ns()}"
        response = client.post(
            "/v1/events",
            json=[{"event_id": marker, "ts": int(time.time() * 1000) - 1000, "type": "marker"}],
        )
        assert response.status_code == 202, response.text
        wait_until(
            lambda: marker in set(_archive(data_dir)["event_id"]), 60, "the marker in the archive"
        )
        _run_batch(client)
        archived = _archive(data_dir)
        start = int(archived["ts"].min()) // MINUTE * MINUTE
        end = int(time.time() * 1000) + MINUTE
        response = client.get(
            f"/v1/metrics/{METRIC}", params={"start": start, "end": end, "step": "1m"}
        )
        assert response.status_code == 200, response.text
    points = [p for s in response.json()["series"] for p in s["points"]]
    expected = (
        archived.unique("event_id").group_by((pl.col("ts") // MINUTE * MINUTE).alias("t_ms")).len()
    )
    per_window = dict(zip(expected["t_ms"].to_list(), expected["len"].to_list(), strict=True))
    served = {int(p["t_ms"]): (p["value"] or 0, p["source"]) for p in points}
    wrong = {
        t: (v, per_window.get(t, 0), source)
        for t, (v, source) in served.items()
        if v != per_window.get(t, 0)
    }
    return {
        "lost": len(lost),
        "twice": len(twice),
        "lost_ids": sorted(lost)[:10],
        "twice_ids": twice[:10],
        "distinct": int(archived["event_id"].n_unique()),
        "served": sum(v for v, _ in served.values()),
        "batch_wrong": {t: w for t, w in wrong.items() if w[2] == "batch"},
        "speed_wrong": {t: w for t, w in wrong.items() if w[2] != "batch"},
        "batch_windows": sum(source == "batch" for _, source in served.values()),
    }


def test_acknowledged_events_survive_kill_int_and_term(
    tmp_path: Path, figures: Callable[[str, str], None]
) -> None:
    workdir = tmp_path / "up"
    workdir.mkdir()
    data_dir = workdir / "data"
    (workdir / "metrics.toml").write_text(METRICS)
    port = free_port()
    env = stratum_env(
        workdir,
        STRATUM_DATA_DIR=str(data_dir),
        STRATUM_API__PORT=str(port),
        STRATUM_METRICS_FILE=str(workdir / "metrics.toml"),
        STRATUM_SPEED__ALLOWED_LATENESS_MS="60000",
        STRATUM_BATCH__INTERVAL_S="3600",
    )
    url = f"http://127.0.0.1:{port}"
    up = StratumProcess("up", env, workdir, new_session=True)
    acked: set[str] = set()
    maybe: set[str] = set()
    try:
        up.start()
        for name, sig in (
            ("SIGKILL", signal.SIGKILL),
            ("SIGINT", signal.SIGINT),
            ("SIGTERM", signal.SIGTERM),
        ):
            wait_until(lambda: _serving(url) or not up.running, 60, "stratum up to serve")
            assert up.running, up.log()[-3000:]
            stream = Stream(url, name.lower())
            thread = threading.Thread(target=stream.run, name=f"stream-{name}", daemon=True)
            thread.start()
            time.sleep(STREAM_S)  # the stream runs: what is under test is its cut
            stopped_at = time.monotonic()
            up.signal(sig)
            assert up.process is not None
            code = up.process.wait(timeout=60)
            stop_s = time.monotonic() - stopped_at
            stream.stop.set()
            thread.join(timeout=30)
            assert stream.error is None, stream.error
            journal = sorted(p.name for p in (data_dir / "journal").glob("*.journal"))
            stop_log = up.log()
            drained = DRAINED.findall(stop_log)
            acked |= set(stream.accepted)
            maybe |= set(stream.unanswered)

            up.start()  # the same data dir
            wait_until(lambda: _serving(url) or not up.running, 60, "the restart to serve")
            assert up.running, up.log()[-3000:]
            recovered = [int(n) for _, n in RECOVERED.findall(up.log())]
            result = _check(up, data_dir, acked, maybe)
            figures(
                "durable acceptance",
                (
                    f"{name}: accepted={len(stream.accepted)} (all runs {len(acked)}) "
                    f"lost={result['lost']} duplicated={result['twice']} "
                    f"stop={stop_s:.1f} s (exit {code}; drain {'/'.join(drained) or '-'} s) "
                    f"journal segments left={len(journal)} "
                    f"recovered into the archive={sum(recovered)} unanswered in flight="
                    f"{len(stream.unanswered)} served={result['served']:.0f} "
                    f"distinct archived={result['distinct']} "
                    f"batch-served windows={result['batch_windows']} "
                    f"speed-served windows off={len(result['speed_wrong'])}"
                ),
            )
            assert len(stream.accepted) >= 500, "the stream hardly ran"
            assert result["lost"] == 0, (name, result["lost_ids"])
            assert result["twice"] == 0, (name, result["twice_ids"])
            assert not result["batch_wrong"], (name, result["batch_wrong"])
            assert result["batch_windows"] > 0
            # Served = batch = accepted over the whole range: a dead epoch's speed
            # rows were rebuilt from its archive (journal recovery included) at start.
            assert not result["speed_wrong"], (name, result["speed_wrong"])
            assert result["served"] == result["distinct"], (name, result)
            if sig == signal.SIGINT:  # a clean Ctrl-C: the shell's code, not click's abort
                assert code == 128 + signal.SIGINT, (code, stop_log[-500:])
                assert "Aborted!" not in stop_log and "Stratum stopped." in stop_log
            if sig != signal.SIGKILL:
                assert stop_s < 30, f"{name} took {stop_s:.1f} s to stop"
                assert journal == [], f"{name} left journal segments {journal}"
        up.signal(signal.SIGTERM)
        assert up.process is not None
        up.process.wait(timeout=60)
    except BaseException:
        print(f"--- {up.log_path.name}, its end ---\n{up.log()[-6000:]}")
        raise
    finally:
        if up.running:
            up.signal(signal.SIGKILL)
            up.process.wait(timeout=10)  # type: ignore[union-attr]
