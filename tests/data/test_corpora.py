"""Corpora: the embedded default, WikiText folders, text files, and one-line errors for bad data."""
import hashlib
import json
import lzma

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
    with pytest.raises(SpecError) as e:
        corpora.load(str(tmp_path))
    assert str(e.value) == (f"--data: {tmp_path}: no wiki.valid.raw[.xz] or wiki.valid.tokens[.xz]; no wiki.test.raw[.xz] "
                            "or wiki.test.tokens[.xz] (expected wiki.train, wiki.valid and wiki.test, each .raw or "
                            ".tokens, optionally .xz; train may be shards wiki.train.00.raw, wiki.train.01.raw, …)")


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


# WikiText folders as the Wikipedia corpus in shared/corpora/wikipedia has them: .xz-compressed, train in shards.
ARTICLES = [f" = Article {i} = \n\n Body of article {i} , line one . \n\n = = Section = = \n\n More of {i} . \n"
            for i in range(6)]
VALID, TEST = " = Valid = \n\n Held out . \n", " = Test = \n\n Also held out . \n"


def _write(path, text, xz=False):
    data = text.encode("utf-8")
    if xz:
        path = path.with_name(path.name + ".xz")
        data = lzma.compress(data)
    path.write_bytes(data)
    return path


def _wiki(folder, shards=None, xz=False, ext="raw"):
    """A WikiText folder: train whole (shards=None) or cut into the given numbered shards of ARTICLES' text."""
    folder.mkdir(exist_ok=True)
    _write(folder / f"wiki.valid.{ext}", VALID, xz)
    _write(folder / f"wiki.test.{ext}", TEST, xz)
    if shards is None:
        _write(folder / f"wiki.train.{ext}", "".join(ARTICLES), xz)
    else:
        for name, text in shards.items():
            _write(folder / f"wiki.train.{name}.{ext}", text, xz)
    return folder


def test_wikitext_xz_and_shards_read_as_the_plain_file(tmp_path):
    plain = corpora.load(str(_wiki(tmp_path / "plain")))
    assert [d.splitlines()[0] for d in plain.splits["train"]] == [f" = Article {i} = " for i in range(6)]
    text = "".join(ARTICLES)
    cut = text.index("More of 3")  # a shard may end inside an article: the shards are one text
    for name, folder in {"xz": _wiki(tmp_path / "xz", xz=True),
                         "shards": _wiki(tmp_path / "shards", {"9": text[:cut], "10": text[cut:]}, xz=True)}.items():
        c = corpora.load(str(folder))
        assert c.splits == plain.splits, name  # shard 9 before shard 10: numeric order, not the names' order
        assert all(c.bytes(s) == plain.bytes(s) for s in corpora.SPLITS)
    mixed = _wiki(tmp_path / "mixed", {"00": text[:cut]})
    _write(mixed / "wiki.train.01.raw", text[cut:], xz=True)  # compressed and plain shards side by side
    assert corpora.load(str(mixed)).splits == plain.splits


def test_wikitext_some_shards_are_a_smaller_train_split(tmp_path):
    full = corpora.load(str(_wiki(tmp_path / "full", {"00": "".join(ARTICLES[:3]), "01": "".join(ARTICLES[3:])})))
    part = corpora.load(str(_wiki(tmp_path / "part", {"00": "".join(ARTICLES[:3])})))
    assert part.splits["train"] == full.splits["train"][:3]
    assert part.splits["validation"] == full.splits["validation"] and part.splits["test"] == full.splits["test"]
    assert part.fingerprint != full.fingerprint


def test_wikitext_lines_are_read_in_blocks_exactly_as_a_whole_file(tmp_path, monkeypatch):
    """The streaming reader (blocks of a few characters here) against wikitext_documents on the whole text, with
    every kind of line break str.splitlines knows, breaks at block edges, and no break at the end."""
    text = (" = A = \r\n\r\n body\ra\x0cb\u2028c \n = = Sub = = \n\n = B = \n x\x85y\n\n\n = C = \r\n"
            " last line without a break")
    (tmp_path / "wiki.train.raw").write_bytes(text.encode("utf-8"))
    _write(tmp_path / "wiki.valid.raw", VALID)
    _write(tmp_path / "wiki.test.raw", TEST)
    whole = corpora.wikitext_documents((tmp_path / "wiki.train.raw").read_text(encoding="utf-8"))
    assert len(whole) == 3
    for block in (1, 2, 3, 5, 7, 64):
        monkeypatch.setattr(corpora, "_BLOCK", block)
        assert list(corpora.load(str(tmp_path)).documents("train")) == whole, block


def test_wikitext_fingerprint_follows_every_file(tmp_path):
    folder = _wiki(tmp_path / "w", {"00": "".join(ARTICLES[:3]), "01": "".join(ARTICLES[3:])}, xz=True)
    seen = {corpora.load(str(folder)).fingerprint}
    for name in sorted(p.name for p in folder.iterdir()):
        path = folder / name
        original = lzma.decompress(path.read_bytes()).decode()
        path.write_bytes(lzma.compress((original + " one more line . \n").encode()))
        seen.add(corpora.load(str(folder)).fingerprint)
        path.write_bytes(lzma.compress(original.encode()))
        assert corpora.load(str(folder)).fingerprint in seen  # back as it was: the same key
    assert len(seen) == 5  # the original and one for each of the four files changed


def test_wikitext_is_read_only_when_its_documents_are_wanted(tmp_path, monkeypatch):
    folder = _wiki(tmp_path / "w", xz=True)
    monkeypatch.setattr(corpora, "_lines", lambda *a: (_ for _ in ()).throw(AssertionError("text read")))
    c = corpora.load(str(folder))  # hashes the files, decompresses nothing
    assert c.name == f"wikitext:{folder}" and len(c.fingerprint) == 64
    with pytest.raises(AssertionError, match="text read"):
        c.splits


@pytest.mark.parametrize("files, message", [
    ({"wiki.train.raw": ARTICLES[0]}, "no wiki.valid.raw[.xz] or wiki.valid.tokens[.xz]; no wiki.test.raw[.xz] or "
                                      "wiki.test.tokens[.xz] ("),
    ({"wiki.valid.raw": VALID, "wiki.test.raw": TEST, "wiki.train.raw.gz": "x"},
     "no wiki.train.raw[.xz], wiki.train.tokens[.xz] or shards wiki.train.NN.raw[.xz] (not recognised: "
     "wiki.train.raw.gz) ("),
    ({"wiki.train.raw": ARTICLES[0], "wiki.valid.tokens": VALID, "wiki.test.raw": TEST},
     "mixes .raw and .tokens files; keep one variant ("),
    ({"wiki.train.raw": ARTICLES[0], "wiki.train.00.raw": ARTICLES[1], "wiki.valid.raw": VALID, "wiki.test.raw": TEST},
     "both wiki.train.raw and shards (wiki.train.00.raw …); keep one ("),
    ({"wiki.train.raw": ARTICLES[0], "wiki.valid.raw": VALID, "wiki.valid.raw.xz": VALID, "wiki.test.raw": TEST},
     "both wiki.valid.raw and wiki.valid.raw.xz; keep one ("),
    ({"wiki.train.01.raw": ARTICLES[0], "wiki.train.1.raw": ARTICLES[1], "wiki.valid.raw": VALID,
      "wiki.test.raw": TEST}, "both wiki.train.01.raw and wiki.train.1.raw; keep one ("),
    ({"wiki.train.raw": ARTICLES[0], "wiki.valid.00.raw": VALID, "wiki.test.raw": TEST},
     "wiki.valid.00.raw: only the train split may be in shards ("),
])
def test_wikitext_layout_errors_say_what_is_missing_or_ambiguous(tmp_path, files, message):
    for name, text in files.items():
        data = text.encode()
        (tmp_path / name).write_bytes(lzma.compress(data) if name.endswith(".xz") else data)
    with pytest.raises(SpecError) as e:
        corpora.load(str(tmp_path))
    assert str(e.value).startswith(f"--data: {tmp_path}: {message}") and "\n" not in str(e.value)


def test_wikitext_bad_files_are_one_line_errors(tmp_path):
    folder = _wiki(tmp_path / "w", xz=True)
    (folder / "wiki.valid.raw.xz").write_bytes(b"not xz at all")
    c = corpora.load(str(folder))
    with pytest.raises(SpecError, match=r"wiki.valid.raw.xz: not a readable .xz file \("):
        list(c.documents("validation"))
    (folder / "wiki.valid.raw.xz").write_bytes(lzma.compress(VALID.encode())[:-20])  # cut short
    with pytest.raises(SpecError, match="wiki.valid.raw.xz: not a readable .xz file"):
        list(corpora.load(str(folder)).documents("validation"))
    (folder / "wiki.valid.raw.xz").write_bytes(lzma.compress(b" = V = \n \xff\xfe \n"))
    with pytest.raises(SpecError, match="wiki.valid.raw.xz: not UTF-8 text"):
        list(corpora.load(str(folder)).documents("validation"))
    (folder / "wiki.valid.raw.xz").write_bytes(lzma.compress(b"\n \n"))
    with pytest.raises(SpecError, match=f"wikitext:{folder}: the validation split is empty"):
        corpora.load(str(folder)).splits
