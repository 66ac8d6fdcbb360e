"""Corpora: the embedded default, WikiText folders, text files, and one-line errors for bad data."""
import hashlib
import json

import pytest

from archsearch.data import corpora
from archsearch.errors import SpecError


def test_embedded_corpus_matches_its_manifest():
    manifest = json.loads((corpora.EMBEDDED.parent / "manifest.json").read_text())
    assert hashlib.sha256(corpora.EMBEDDED.read_bytes()).hexdigest() == manifest["output"]["sha256"]
    assert corpora.EMBEDDED.stat().st_size <= 5 * 2**20
    c = corpora.embedded()
    counts = {s: len(c.splits[s]) for s in corpora.SPLITS}
    assert counts == {s: sum(v[s] for v in manifest["documents"].values()) for s in corpora.SPLITS}
    assert counts == {"train": 194, "validation": 10, "test": 10}
    assert [d.splitlines()[0] for d in c.splits["validation"]][:3] == ["Aberdeen (disambiguation)", "Alabama", "Altruism"]
    assert not set(c.splits["train"]) & set(c.splits["validation"])


def test_wikitext_folder(root):
    c = corpora.load(str(root / "tests/fixtures/wikitext"))
    assert [d.splitlines()[0] for d in c.splits["train"]] == [" = Lighthouse of Varn = ", " = River Oskel = ",
                                                              " = Marta Ilven = "]
    assert "= = History = =" in c.splits["train"][0]  # subsections stay inside their article
    assert len(c.splits["validation"]) == 1 and len(c.splits["test"]) == 1


def test_wikitext_raw_variant(tmp_path, root):
    for split in ("train", "valid", "test"):
        text = (root / f"tests/fixtures/wikitext/wiki.{split}.tokens").read_text()
        (tmp_path / f"wiki.{split}.raw").write_text(text)
    assert len(corpora.load(str(tmp_path)).splits["train"]) == 3


def test_wikitext_folder_missing_a_split(tmp_path, root):
    (tmp_path / "wiki.train.tokens").write_text(" = A = \n text \n")
    with pytest.raises(SpecError, match="no wiki.{train,valid,test}.tokens \\(or .raw\\) files here"):
        corpora.load(str(tmp_path))


def test_text_files_few_documents_are_cut_by_lines(tmp_path):
    for i in range(3):
        (tmp_path / f"doc{i}.txt").write_text("\n".join(f"line {j} of document {i}" for j in range(100)))
    c = corpora.load(str(tmp_path))
    assert len(c.splits["train"]) == 3 and c.splits["train"][0].count("\n") == 89
    assert c.splits["validation"][0].startswith("line 90 of document 0")


def test_text_files_many_documents_split_by_document(tmp_path):
    for i in range(40):
        (tmp_path / f"{i:02d}.txt").write_text(f"document {i}")
    c = corpora.load(str(tmp_path / "*.txt"))
    assert c.splits["validation"] == ("document 7", "document 27") and c.splits["test"] == ("document 13", "document 33")


def test_bad_sources_are_one_line_errors(tmp_path):
    with pytest.raises(SpecError, match="'nowhere': no such file or folder; expected 'embedded'"):
        corpora.load("nowhere")
    with pytest.raises(SpecError, match="no text files found"):
        corpora.load(str(tmp_path / "*.txt"))
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(SpecError, match="bin.txt: not UTF-8 text"):
        corpora.load(str(tmp_path))


def test_fingerprint_follows_content(tmp_path):
    (tmp_path / "a.txt").write_text("one\n" * 50)
    first = corpora.load(str(tmp_path)).fingerprint
    (tmp_path / "a.txt").write_text("two\n" * 50)
    assert corpora.load(str(tmp_path)).fingerprint != first
