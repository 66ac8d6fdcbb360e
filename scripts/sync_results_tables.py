"""Copy into docs/results.md every report table it marks (`<!-- table from results/F/report.md: ## SECTION -->`),
after a study's report changed; tests/test_published_results.py checks that the copies equal their reports.

    python scripts/sync_results_tables.py
"""
from pathlib import Path

from archsearch.results_tables import copies

DOCS = Path(__file__).resolve().parents[1] / "docs" / "results.md"


def main() -> None:
    text = DOCS.read_text()
    for m, want, have in reversed(copies(text, DOCS.parent)):  # from the end: earlier offsets stay valid
        start = m.end() + 1
        text = text[:start] + "\n".join(want) + text[start + len("\n".join(have)):]
    DOCS.write_text(text)


if __name__ == "__main__":
    main()
