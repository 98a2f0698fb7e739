"""Shared formatting of ``docs/benchmarks.md``: numbers, verdicts, figures, and the sections other scripts own.

A benchmark module formats its own section with these; ``report.py`` assembles the page. A benchmark that
writes its section itself (outside ``bench/run.py``) puts it between ``<!-- bench:NAME:start -->`` and
``<!-- bench:NAME:end -->`` (:func:`write_block`); regenerating the page keeps those blocks (:func:`blocks`).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from common import ROOT

DOC = ROOT / "docs" / "benchmarks.md"
IMG = ROOT / "docs" / "img"

#: Cloudflare's limit the figures are set against: 1,200 requests per 300 s per user.
CF_REQUESTS, CF_PERIOD = 1200, 300.0

_BLOCK = re.compile(r"<!-- bench:(?P<name>[\w-]+):start -->\n.*?<!-- bench:(?P=name):end -->(?:\n|\Z)", re.DOTALL)


def fmt(x: float | None, digits: int = 1) -> str:
    """Return ``x`` with thousands separators and ``digits`` decimals, or ``n/a``."""
    if x is None or (isinstance(x, float) and (math.isnan(x) or math.isinf(x))):
        return "n/a"
    return f"{x:,.{digits}f}"


def ratio(value: float, threshold: float) -> str:
    """Return a ratio with two decimals, or three when two would round it onto the threshold."""
    return f"{value:.3f}x" if round(value, 2) == threshold and value != threshold else f"{value:.2f}x"


def verdict(ok: bool, detail: str = "") -> str:
    """Return ``**met**`` or ``**missed**``, with the detail in brackets."""
    return ("**met**" if ok else "**missed**") + (f" ({detail})" if detail else "")


def targets(
    number: str, checks: list[tuple[str, str, str, bool, str]]
) -> tuple[list[tuple[str, str, str, str]], list[str]]:
    """
    Return a benchmark's rows of the page's target table, and the keys of the targets it missed.

    :param number: The benchmark's section number, the rows' first cell.
    :param checks: One ``(key, claim, figure, ok, shortfall)`` per target: ``shortfall`` is the verdict's
        detail when the target was missed.
    """
    rows = [(number, claim, figure, verdict(ok, "" if ok else shortfall)) for _, claim, figure, ok, shortfall in checks]
    return rows, [key for key, _, _, ok, _ in checks if not ok]


def duration(seconds: float) -> str:
    """Return ``N min SS s``."""
    return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"


def table(header: str, rows: list[tuple[str, ...]]) -> list[str]:
    """Return a Markdown table: ``header`` (``| a | b |``), its rule, then one line per row."""
    width = header.count("|") - 1
    return [header, "|" + "---|" * width, *(f"| {' | '.join(row)} |" for row in rows)]


def plt() -> Any:
    """Return ``matplotlib.pyplot`` set up for the page's figures (no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    pyplot.rcParams.update({"figure.dpi": 110, "font.size": 9, "axes.grid": True, "grid.alpha": 0.3})
    return pyplot


def label_bars(ax: Any, bars: Any, texts: list[str], **text: Any) -> None:
    """
    Write each text centred above its bar.

    :param ax: The axes the bars are on.
    :param bars: The bars, as ``ax.bar`` returned them.
    :param texts: One text per bar, in the same order.
    :param text: Further keyword arguments for ``ax.text`` (``fontsize``...).
    """
    for bar, label in zip(bars, texts, strict=True):
        ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), label, ha="center", va="bottom", **text)


def save(fig: Any, name: str) -> str:
    """Save a figure as ``docs/img/NAME`` (no timestamp in it) and return its path relative to the page."""
    IMG.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(IMG / name, metadata={"Software": None})
    import matplotlib.pyplot as pyplot

    pyplot.close(fig)
    return f"img/{name}"


def blocks(text: str) -> list[str]:
    """Return the marked sections of a page (``<!-- bench:NAME:start -->`` ... ``end -->``), in page order."""
    return [match.group(0).rstrip("\n") + "\n" for match in _BLOCK.finditer(text)]


def write_block(name: str, lines: list[str], doc: Path = DOC) -> Path:
    """
    Write one benchmark's own section into the page, between its markers, leaving the rest of the page alone.

    :param name: The section's name (``gate``, ``watchers``...).
    :param lines: The section's Markdown lines.
    :param doc: The page (default ``docs/benchmarks.md``); the block replaces its old one or ends the page.
    """
    block = "\n".join([f"<!-- bench:{name}:start -->", *lines, f"<!-- bench:{name}:end -->"]) + "\n"
    text = doc.read_text() if doc.exists() else ""
    marker = re.escape(name)
    pattern = re.compile(rf"<!-- bench:{marker}:start -->\n.*?<!-- bench:{marker}:end -->(?:\n|\Z)", re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text, count=1)
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + block
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)
    return doc
