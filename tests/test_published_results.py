"""Every study published under docs/results/ regenerates its committed report.md, word for word, from its own
database: the published numbers are the study's, not hand-edited text. A table docs/results.md copies from a report
(marked `<!-- table from results/F/report.md: ## SECTION -->`) is that section's table, line for line."""
import re
import shutil
from pathlib import Path

import pytest

from archsearch.cli import main

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
FOLDERS = sorted(p for p in RESULTS.iterdir() if (p / "report.md").is_file())


def test_there_are_published_studies():
    assert len(FOLDERS) >= 3


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_report_regenerates_from_its_study(folder, tmp_path, capsys):
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy)
    (copy / "report.md").unlink()
    assert main(["report", str(copy)]) == 0
    assert (copy / "report.md").read_text() == (folder / "report.md").read_text()


DOCS = RESULTS.parent / "results.md"
COPIED = re.compile(r"^<!-- table from (\S+): (## .+?) -->$", re.M)


def _table_after(text: str, at: int) -> list[str]:
    rows = text[at:].lstrip("\n").split("\n")
    return rows[:next((i for i, r in enumerate(rows) if not r.startswith("|")), len(rows))]


def test_tables_copied_into_results_md_are_their_reports():
    text = DOCS.read_text()
    marks = list(COPIED.finditer(text))
    assert marks, "docs/results.md copies no report table"
    for m in marks:
        report = (DOCS.parent / m.group(1)).read_text()
        section = report.index(m.group(2) + "\n")
        want = _table_after(report, report.index("\n|", section))
        assert want and _table_after(text, m.end()) == want, f"docs/results.md's copy of {m.group(1)} {m.group(2)}"
