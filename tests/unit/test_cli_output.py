"""What the CLI prints, without a running Stratum: help texts, finished jobs as lines,
and progress labels with phase names."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from stratum.app.admin_client import result_lines
from stratum.app.cli import main
from stratum.job_progress import progress_label, split_params


def test_up_help_describes_every_option() -> None:
    result = CliRunner().invoke(main, ["up", "--help"])
    assert result.exit_code == 0
    assert "--data-dir PATH Where the archive" in " ".join(result.output.split())


def test_a_replay_result_is_readable_lines_without_state_as_params() -> None:
    job = {
        "job_id": "r1",
        "kind": "replay",
        "state": "succeeded",
        "rows_in": 12345,
        "rows_out": 0,
        "horizon": None,
        "error": "",
        "params": {
            "phase": "switched",
            "generation": 4,
            "rebuilds": "all windows",
            "carries_over": "nothing",
        },
    }
    lines = result_lines(job)
    assert lines == [
        "replay job r1 succeeded",
        "  events read   12,345",
        "  generation    4",
        "  range         rebuilds all windows from the archive and the log",
    ]
    assert not any("{" in line or "rows out" in line for line in lines)


@pytest.mark.parametrize(
    ("kind", "state", "done", "total", "phase", "label"),
    [
        ("batch", "queued", 0, 0, None, "queued"),
        ("batch", "running", 0, 0, None, "starting"),
        ("batch", "running", 0, 6, None, "0/6 · reading archive"),
        ("batch", "running", 1, 6, None, "1/6 · computing metrics"),
        ("batch", "running", 5, 6, None, "5/6 · writing coverage"),
        ("batch", "failed", 2, 6, None, "2/6"),
        ("batch", "succeeded", 6, 6, None, "6/6 · done"),
        ("replay", "running", 3, 10, "archive", "3/10 · reading the archive"),
        ("replay", "running", 1, 1, "log", "1/1 · following the log"),
    ],
)
def test_progress_names_the_phase(
    kind: str, state: str, done: int, total: int, phase: str | None, label: str
) -> None:
    assert progress_label(kind, state, done, total, phase) == label


def test_state_is_told_from_parameters() -> None:
    asked, state = split_params({"from_ms": 5, "phase": "log", "generation": 2})
    assert asked == {"from_ms": 5} and state == {"phase": "log", "generation": 2}


def test_a_job_error_is_one_line_with_where() -> None:
    from stratum.errors import describe_failure

    def fail() -> None:
        raise ValueError("start must be\nbefore end")

    try:
        fail()
    except ValueError as exc:
        text = describe_failure(exc)
    assert "\n" not in text
    assert text.startswith("ValueError: start must be before end (at test_cli_output.py:")
