"""The fuzz targets' tally, printed at the end of the run."""

from __future__ import annotations

import pytest

from tests.fuzz.harness import EXAMPLES, TALLY


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TALLY["inputs"]:
        terminalreporter.write_line(
            f"fuzz: {TALLY['inputs']} inputs tried ({EXAMPLES} examples a target): "
            f"{TALLY['500']} answered 500, {TALLY['other 5xx']} answered 502-504 "
            "(broken upstream answers only)"
        )
