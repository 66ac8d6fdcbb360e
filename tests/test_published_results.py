"""Every study published under docs/results/ regenerates its committed report.md, word for word, from its own
database: the published numbers are the study's, not hand-edited text. A table docs/results.md copies from a report
(marked `<!-- table from results/F/report.md: ## SECTION -->`) is that section's table, line for line."""
import shutil
from pathlib import Path

import pytest

from archsearch.cli import main
from archsearch.results_tables import copies

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


def test_tables_copied_into_results_md_are_their_reports():
    found = copies(DOCS.read_text(), DOCS.parent)
    assert found, "docs/results.md copies no report table"
    for m, want, have in found:
        assert want and have == want, f"docs/results.md's copy of {m.group(1)} {m.group(2)}"
