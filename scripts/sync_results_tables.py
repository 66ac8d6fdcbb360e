"""Copy into docs/results.md every report table it marks (`<!-- table from results/F/report.md: ## SECTION -->`),
after a study's report changed; tests/test_published_results.py checks that the copies equal their reports.

    python scripts/sync_results_tables.py
"""
import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs" / "results.md"
MARK = re.compile(r"^<!-- table from (\S+): (## .+?) -->$", re.M)


def table_at(text: str, at: int) -> list[str]:
    rows = text[at:].lstrip("\n").split("\n")
    return rows[:next((i for i, r in enumerate(rows) if not r.startswith("|")), len(rows))]


def main() -> None:
    text = DOCS.read_text()
    for m in reversed(list(MARK.finditer(text))):  # from the end: earlier offsets stay valid
        report = (DOCS.parent / m.group(1)).read_text()
        want = table_at(report, report.index("\n|", report.index(m.group(2) + "\n")))
        start = m.end() + 1
        text = text[:start] + "\n".join(want) + text[start + len("\n".join(table_at(text, m.end()))):]
    DOCS.write_text(text)


if __name__ == "__main__":
    main()
