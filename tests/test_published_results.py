"""Every study published under docs/results/ regenerates its committed report.md, word for word, from its own
database: the published numbers are the study's, not hand-edited text."""
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
