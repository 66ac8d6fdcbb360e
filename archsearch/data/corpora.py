"""Corpora as documents in fixed train/validation/test splits.

Sources (the `data` string of a task, or `--data`):
- `embedded`: the real English text shipped in the package (Wikipedia sample, Shakespeare, KJV; NOTICE.md);
- a folder in the WikiText layout: wiki.{train,valid,test}.tokens or wiki.{train,valid,test}.raw;
- `wikitext-103`, `wikitext-2` (add `-raw` for the raw variants): through the `datasets` package when it is installed
  and online;
- your own text: a folder of .txt files or a glob; each file is a document.
"""
from __future__ import annotations

import glob as globlib
import hashlib
import json
import lzma
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import Loc, SpecError

SPLITS = ("train", "validation", "test")
EMBEDDED = Path(__file__).parent / "corpus" / "embedded.jsonl.xz"
HELP = ("expected 'embedded', a WikiText folder (wiki.train.tokens …), a folder or glob of .txt files, "
        "or 'wikitext-103'/'wikitext-2' with the datasets package online")


@dataclass(frozen=True)
class Corpus:
    name: str
    splits: dict  # split → tuple of document texts
    fingerprint: str  # sha256 of the content: the token cache's key

    def bytes(self, split: str) -> int:
        """UTF-8 bytes of a split, counting one byte per document separator (bits/byte divides by this)."""
        return sum(len(d.encode("utf-8")) + 1 for d in self.splits[split])


def _make(name: str, splits: dict) -> Corpus:
    h = hashlib.sha256()
    for s in SPLITS:
        for doc in splits[s]:
            h.update(s.encode() + b"\0" + doc.encode("utf-8") + b"\0")
    for s in ("train", "validation"):
        if not splits[s]:
            raise SpecError(Loc("--data"), f"{name}: the {s} split is empty")
    return Corpus(name, {s: tuple(splits[s]) for s in SPLITS}, h.hexdigest())


def embedded() -> Corpus:
    splits = {s: [] for s in SPLITS}
    with lzma.open(EMBEDDED, "rt", encoding="utf-8") as f:
        for line in f:
            doc = json.loads(line)
            splits[doc["split"]].append(doc["text"])
    return _make("embedded", splits)


_HEADING = re.compile(r"^ = [^=].* = $")


def wikitext_documents(text: str) -> list[str]:
    """Split a WikiText file into articles at its top-level ' = Title = ' headings."""
    docs, cur = [], []
    for line in text.splitlines():
        if _HEADING.match(line) and any(s.strip() for s in cur):
            docs.append("\n".join(cur).strip("\n"))
            cur = []
        cur.append(line)
    if any(s.strip() for s in cur):
        docs.append("\n".join(cur).strip("\n"))
    return docs


def wikitext_folder(folder: Path) -> Corpus:
    for ext in ("tokens", "raw"):
        files = {s: folder / f"wiki.{n}.{ext}" for s, n in zip(SPLITS, ("train", "valid", "test"))}
        if all(f.is_file() for f in files.values()):
            splits = {s: wikitext_documents(f.read_text(encoding="utf-8")) for s, f in files.items()}
            return _make(f"wikitext:{folder}", splits)
    raise SpecError(Loc("--data"), f"{folder}: no wiki.{{train,valid,test}}.tokens (or .raw) files here")


def wikitext_hub(name: str) -> Corpus:
    try:
        import datasets
    except ImportError:
        raise SpecError(Loc("--data"), f"'{name}' needs the `datasets` package (pip install datasets) and network; "
                                       "or pass a local folder holding wiki.train.tokens, wiki.valid.tokens, "
                                       "wiki.test.tokens") from None
    config = {"wikitext-103": "wikitext-103-v1", "wikitext-2": "wikitext-2-v1",
              "wikitext-103-raw": "wikitext-103-raw-v1", "wikitext-2-raw": "wikitext-2-raw-v1"}[name]
    try:
        ds = datasets.load_dataset("wikitext", config)
    except Exception as e:  # offline, hub errors: one line, not a traceback
        raise SpecError(Loc("--data"), f"'{name}': could not load through datasets ({e.__class__.__name__}); "
                                       "pass a local WikiText folder instead") from None
    splits = {s: wikitext_documents("".join(ds[s]["text"])) for s in SPLITS}
    return _make(name, splits)


def split_documents(docs: list[str]) -> dict:
    """Fixed splits of a list of documents: with 20 or more, every 20th (offset 7) validates and every 20th (offset
    13) tests; with fewer, each document is cut at line boundaries into its first 90%, next 5%, last 5%."""
    if len(docs) >= 20:
        out = {s: [] for s in SPLITS}
        for i, d in enumerate(docs):
            out[{7: "validation", 13: "test"}.get(i % 20, "train")].append(d)
        return out
    out = {s: [] for s in SPLITS}
    for d in docs:
        lines = d.splitlines()
        a, b = int(len(lines) * 0.9), int(len(lines) * 0.95)
        for s, part in zip(SPLITS, (lines[:a], lines[a:b], lines[b:])):
            if any(x.strip() for x in part):
                out[s].append("\n".join(part))
    return out


def text_files(pattern: str) -> Corpus:
    p = Path(pattern)
    paths = sorted(p.rglob("*.txt")) if p.is_dir() else sorted(Path(x) for x in globlib.glob(pattern, recursive=True))
    paths = [x for x in paths if x.is_file()]
    if not paths:
        raise SpecError(Loc("--data"), f"'{pattern}': no text files found; {HELP}")
    docs = []
    for x in paths:
        try:
            docs.append(x.read_text(encoding="utf-8"))
        except UnicodeDecodeError as e:
            raise SpecError(Loc(str(x)), f"not UTF-8 text (byte {e.start})") from None
    return _make(f"files:{pattern}", split_documents(docs))


def load(source: str) -> Corpus:
    """The corpus a data string names (see the module docstring)."""
    if source == "embedded":
        return embedded()
    if source in ("wikitext-103", "wikitext-2", "wikitext-103-raw", "wikitext-2-raw"):
        return wikitext_hub(source)
    p = Path(source)
    if p.is_dir() and (any(p.glob("wiki.train.*"))):
        return wikitext_folder(p)
    if p.is_dir() or any(ch in source for ch in "*?[") or p.is_file():
        return text_files(source)
    raise SpecError(Loc("--data"), f"'{source}': no such file or folder; {HELP}")
