"""Report tables that docs/results.md copies (marked `<!-- table from results/F/report.md: ## SECTION -->` above the
copy): where each copy is and what its report's table says now. scripts/sync_results_tables.py rewrites the copies;
tests/test_published_results.py checks them."""
from __future__ import annotations

import re
from pathlib import Path

MARK = re.compile(r"^<!-- table from (\S+): (## .+?) -->$", re.M)


def table_at(text: str, at: int) -> list[str]:
    """The rows of the Markdown table starting at `at` (after blank lines), up to the first line that is not a row."""
    rows = text[at:].lstrip("\n").split("\n")
    return rows[:next((i for i, r in enumerate(rows) if not r.startswith("|")), len(rows))]


def copies(text: str, docs: Path) -> list[tuple[re.Match, list[str], list[str]]]:
    """(mark, the report's table now, the copy's rows) for each marked copy in `text`, a page in the folder `docs`."""
    out = []
    for m in MARK.finditer(text):
        report = (docs / m.group(1)).read_text()
        want = table_at(report, report.index("\n|", report.index(m.group(2) + "\n")))
        out.append((m, want, table_at(text, m.end())))
    return out
