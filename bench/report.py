"""What a benchmark hands back to the driver: tables, notes, and figures checked against the
targets of DESIGN.md / issue 7. Targets are reported (PASS/MISS), never asserted."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Check:
    """One measured figure against its target; ``met`` None when it could not be measured."""

    what: str
    measured: str
    target: str
    met: bool | None

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "MISS", None: "SKIP"}[self.met]

    def line(self) -> str:
        return f"{self.verdict}  {self.what}: {self.measured} (target {self.target})"


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        self.lines += render_table(headers, rows)

    def note(self, text: str) -> None:
        self.lines.append(text)

    def check(self, what: str, measured: str, target: str, met: bool | None) -> None:
        self.checks.append(Check(what, measured, target, met))

    def skip(self, what: str, why: str, target: str) -> None:
        self.checks.append(Check(what, f"not measured ({why})", target, None))


def render_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """Left-aligned first column, right-aligned figures, a rule under the header."""
    cells = [[str(h) for h in headers], *([_cell(v) for v in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        first = row[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    return [line(cells[0]), "  ".join("-" * w for w in widths), *(line(r) for r in cells[1:])]


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def ms(microseconds: float) -> str:
    return f"{microseconds / 1000:.2f} ms"
