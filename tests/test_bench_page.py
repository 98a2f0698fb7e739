"""bench/report.py keeps the sections other benchmarks write between markers; bench/page.py writes one in place."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The bench/ directory on ``sys.path`` (its modules import each other by bare name), for this test only."""
    names = ("common", "page", "report", "import_cost", "throughput", "fleet", "health")
    monkeypatch.syspath_prepend(str(BENCH))
    for name in names:
        monkeypatch.delitem(sys.modules, name, raising=False)
    import common
    import page
    import report

    yield common, page, report
    for name in names:  # bare names: leave none behind for other tests
        sys.modules.pop(name, None)


def _results(common: Any) -> dict[str, Any]:
    """A run with no benchmark in it: the page has its header, machine, empty targets and no missed target."""
    return {"started_at": 1_700_000_000.0, "quick": True, "wall_s": 61.0, "machine": common.machine()}


def test_regenerating_the_page_keeps_the_marked_sections(bench: Any, tmp_path: Path) -> None:
    common, page, report = bench
    doc = tmp_path / "benchmarks.md"
    page.write_block("gate", ["## The gate", "", "first text"], doc=doc)
    page.write_block("watchers", ["## Watchers", "", "| a |", "|---|"], doc=doc)
    gate = "<!-- bench:gate:start -->\n## The gate\n\nfirst text\n<!-- bench:gate:end -->\n"
    watchers = "<!-- bench:watchers:start -->\n## Watchers\n\n| a |\n|---|\n<!-- bench:watchers:end -->\n"
    assert doc.read_text() == gate + "\n" + watchers

    report.write(_results(common), doc=doc)
    text = doc.read_text()
    assert text.startswith("# Benchmarks\n")
    assert "## Machine" in text
    assert "None: every target held in this run." in text
    assert text.endswith("\n\n" + gate + "\n" + watchers), text[-400:]
    generated = text[: text.index("<!-- bench:gate:start -->")]

    # a benchmark rewrites its block in place; the next regeneration keeps the new text, in the same order
    page.write_block("gate", ["## The gate", "", "second text"], doc=doc)
    report.write(_results(common), doc=doc)
    again = doc.read_text()
    assert again == generated + gate.replace("first", "second") + "\n" + watchers
    assert again.count("<!-- bench:gate:start -->") == 1


def test_without_marked_sections_the_page_ends_with_the_generated_text(bench: Any, tmp_path: Path) -> None:
    common, _page, report = bench
    doc = tmp_path / "benchmarks.md"
    doc.write_text("an old page, hand edited, no markers\n")
    report.write(_results(common), doc=doc)
    text = doc.read_text()
    assert "hand edited" not in text
    assert text.endswith("None: every target held in this run.\n")
    assert "<!-- bench:" not in text


def test_a_block_that_ends_the_file_without_a_newline_is_kept(bench: Any, tmp_path: Path) -> None:
    common, page, report = bench
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# old page\n\n<!-- bench:watchers:start -->\n## Watchers\n<!-- bench:watchers:end -->")
    report.write(_results(common), doc=doc)
    assert doc.read_text().endswith(
        "held in this run.\n\n<!-- bench:watchers:start -->\n## Watchers\n<!-- bench:watchers:end -->\n"
    )
    page.write_block("watchers", ["## Watchers, again"], doc=doc)
    assert doc.read_text().count("<!-- bench:watchers:start -->") == 1
    assert "## Watchers, again\n<!-- bench:watchers:end -->\n" in doc.read_text()
