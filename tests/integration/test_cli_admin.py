"""The admin CLI against the shared real stack, as a script or a pipe sees it (not a
terminal): readable lines, phases named, a final newline, no Python reprs."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from stratum.app.cli import main
from tests.stack import Stack

pytestmark = pytest.mark.integration


def test_recompute_off_a_terminal_prints_named_phases_and_readable_lines(stack: Stack) -> None:
    result = CliRunner().invoke(
        main, ["recompute", "--url", stack.base_url, "--token", "test-admin-token"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.endswith("\n")
    lines = result.output.splitlines()
    assert lines[0].startswith("recompute job ") and lines[0].endswith(" queued")
    assert "recompute" not in lines[1:] and "{" not in result.output, result.output
    assert any(line.startswith("batch job ") and line.endswith(" succeeded") for line in lines)
    assert any(line.split() and line.split()[0] == "horizon" for line in lines), lines
