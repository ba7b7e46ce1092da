"""Ctrl-C on ``stratum up --demo`` while its generator posts: a clean stop reads as one.
uvicorn closes its sockets before the app's shutdown runs, so the demo's feeds, stopped
only there, posted into a closed port and logged "ingest unreachable" as a WARNING; and
click reported uvicorn's re-raised SIGINT as "Aborted!" with exit 1."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.ports import free_port
from tests.processes import StratumProcess, stratum_env, wait_for_log

pytestmark = [pytest.mark.faults, pytest.mark.integration]


@pytest.mark.xfail(
    reason="known, not fixed: a demo post in flight when uvicorn closes the connection is "
    'cut ("ingest unreachable: " with no message; 1 CI run of 7 here)',
    strict=False,
)
def test_ctrl_c_under_the_demo_stops_without_a_warning(tmp_path: Path) -> None:
    port = free_port()
    env = stratum_env(
        tmp_path,
        STRATUM_DATA_DIR=str(tmp_path / "data"),
        STRATUM_API__PORT=str(port),
        STRATUM_BATCH__INTERVAL_S="3600",
    )
    up = StratumProcess("up", env, tmp_path, "--demo", new_session=True)
    up.start()
    try:
        assert wait_for_log(up, "Stratum is up", 90), up.log()[-3000:]
        time.sleep(3)  # the generator is posting its history, 5,000 events a request
        up.signal(signal.SIGINT)
        assert up.process is not None
        code = up.process.wait(timeout=60)
    finally:
        if up.running:
            up.kill()
    log = up.log()
    warnings = [line for line in log.splitlines() if " WARNING " in line or " ERROR " in line]
    assert warnings == [], warnings
    assert "stopping Stratum ..." in log and "Stratum stopped." in log, log[-2000:]
    assert "Aborted!" not in log and code == 128 + signal.SIGINT, (code, log[-1000:])
