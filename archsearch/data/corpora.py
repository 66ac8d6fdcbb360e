"""Corpora as documents in fixed train/validation/test splits.

Sources (the `data` string of a task, or `--data`):
- `embedded`: the real English text shipped in the package (Wikipedia sample, Shakespeare, KJV; NOTICE.md);
- a folder in the WikiText layout: wiki.{train,valid,test}.tokens or wiki.{train,valid,test}.raw, each optionally
  .xz-compressed; the train split may instead be shards wiki.train.NN.raw (or .tokens), read in numeric order as one
  text, so a folder with some of the shards is a smaller train split with the same validation and test. Read lazily:
  only the files are hashed when loaded, and a run whose tokens are cached never decompresses them;
- `wikitext-103`, `wikitext-2` (add `-raw` for the raw variants): through the `datasets` package when it is installed
  and online;
- your own text: a folder of .txt files or a glob; each file is a document.
"""
from __future__ import annotations

import glob as globlib
import hashlib
import io
import json
import lzma
import re
from functools import cached_property
from pathlib import Path

from ..errors import Loc, SpecError

SPLITS = ("train", "validation", "test")
EMBEDDED = Path(__file__).parent / "corpus" / "embedded.jsonl.xz"
HELP = ("expected 'embedded', a WikiText folder (wiki.train.tokens …), a folder or glob of .txt files, "
        "or 'wikitext-103'/'wikitext-2' with the datasets package online")


def doc_bytes(doc: str) -> int:
    """A document's UTF-8 bytes plus one for its separator: what bits per byte divides by (the token cache stores the
    sum per split, so a cached run never needs the text)."""
    return len(doc.encode("utf-8")) + 1


class Corpus:
    """A name, a fingerprint of the content (the token cache's key), and documents read through `read(split,
    on_read)`. `documents(split)` streams a split without keeping it; `splits[split]` keeps it, read on first use."""

    def __init__(self, name: str, fingerprint: str, read):
        self.name, self.fingerprint, self._read = name, fingerprint, read

    def documents(self, split: str, on_read=None):
        """The split's document texts in order; on_read(done, total), if given, hears how far the reading is."""
        n = 0
        for n, doc in enumerate(self._read(split, on_read), 1):
            yield doc
        if not n and split != "test":  # a lazy corpus learns this only now
            raise SpecError(Loc("--data"), f"{self.name}: the {split} split is empty")

    @cached_property
    def splits(self) -> dict:
        """split → tuple of document texts."""
        return {s: tuple(self.documents(s)) for s in SPLITS}

    def bytes(self, split: str) -> int:
        """UTF-8 bytes of a split, counting one byte per document separator (bits/byte divides by this)."""
        return sum(doc_bytes(d) for d in self.documents(split))


def _in_memory(docs: tuple, on_read):
    for i, doc in enumerate(docs, 1):
        yield doc
        if on_read:
            on_read(i, len(docs))


def _make(name: str, splits: dict) -> Corpus:
    """A corpus held in memory, fingerprinted by its decoded text."""
    h = hashlib.sha256()
    for s in SPLITS:
        for doc in splits[s]:
            h.update(s.encode() + b"\0" + doc.encode("utf-8") + b"\0")
    for s in ("train", "validation"):
        if not splits[s]:
            raise SpecError(Loc("--data"), f"{name}: the {s} split is empty")
    held = {s: tuple(splits[s]) for s in SPLITS}
    return Corpus(name, h.hexdigest(), lambda split, on_read: _in_memory(held[split], on_read))


def embedded() -> Corpus:
    splits = {s: [] for s in SPLITS}
    with lzma.open(EMBEDDED, "rt", encoding="utf-8") as f:
        for line in f:
            doc = json.loads(line)
            splits[doc["split"]].append(doc["text"])
    return _make("embedded", splits)


_HEADING = re.compile(r"^ = [^=].* = $")


def _articles(lines):
    """Articles from lines of WikiText, cut at its top-level ' = Title = ' headings."""
    cur = []
    for line in lines:
        if _HEADING.match(line) and any(s.strip() for s in cur):
            yield "\n".join(cur).strip("\n")
            cur = []
        cur.append(line)
    if any(s.strip() for s in cur):
        yield "\n".join(cur).strip("\n")


def wikitext_documents(text: str) -> list[str]:
    """Split a WikiText file into articles at its top-level ' = Title = ' headings."""
    return list(_articles(text.splitlines()))


_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"  # the characters str.splitlines breaks at
_BLOCK = 1 << 22  # characters decoded at a time: a few MB in memory, whatever the file's size


def _lines(paths: list[Path], on_read=None):
    """The lines of the files read as one text, exactly as "".join(texts).splitlines() gives them, a block at a time
    (with universal newlines, as Path.read_text reads). on_read(done, total) counts stored bytes."""
    total, done, carry = sum(p.stat().st_size for p in paths), 0, ""
    for path in paths:
        with path.open("rb") as raw, io.TextIOWrapper(lzma.open(raw) if path.suffix == ".xz" else raw,
                                                      encoding="utf-8") as f:
            try:
                while block := f.read(_BLOCK):
                    lines = (carry + block).splitlines()
                    carry = "" if block[-1] in _BREAKS else lines.pop()  # its line may go on in the next block
                    yield from lines
                    if on_read:
                        on_read(done + raw.tell(), total)
            except UnicodeDecodeError:
                raise SpecError(Loc(str(path)), "not UTF-8 text") from None
            except (lzma.LZMAError, EOFError) as e:
                raise SpecError(Loc(str(path)), f"not a readable .xz file ({e})") from None
        done += path.stat().st_size
    if carry:  # the text's last line, with no line break after it
        yield carry


_WIKI = re.compile(r"wiki\.(train|valid|test)\.(?:(\d+)\.)?(raw|tokens)(\.xz)?")
_WIKI_LAYOUT = ("expected wiki.train, wiki.valid and wiki.test, each .raw or .tokens, optionally .xz; train may be "
                "shards wiki.train.00.raw, wiki.train.01.raw, …")


_WIKI_PREFIXES = ("wiki.train.", "wiki.valid.", "wiki.test.")


def _is_wikitext(folder: Path) -> bool:
    return any(p.name.startswith(_WIKI_PREFIXES) for p in folder.iterdir())


def wikitext_files(folder: Path) -> dict:
    """split → the files holding it, in reading order; a one-line error naming what is missing or ambiguous."""
    def bad(message):
        return SpecError(Loc("--data"), f"{folder}: {message}", _WIKI_LAYOUT)

    found, variants, odd = {}, set(), []  # found: (split, shard number or None) → paths
    for p in sorted(q for q in folder.iterdir() if q.is_file()):
        m = _WIKI.fullmatch(p.name)
        if not m:
            if p.name.startswith(_WIKI_PREFIXES):
                odd.append(p.name)
            continue
        if m[1] != "train" and m[2] is not None:
            raise bad(f"{p.name}: only the train split may be in shards")
        found.setdefault((m[1], None if m[2] is None else int(m[2])), []).append(p)
        variants.add(m[3])
    if len(variants) > 1:  # different texts: never train on one and score on the other
        raise bad("mixes .raw and .tokens files; keep one variant")
    for paths in found.values():
        if len(paths) > 1:  # wiki.valid.raw beside wiki.valid.raw.xz, or wiki.train.1.raw beside wiki.train.01.raw
            raise bad(f"both {' and '.join(p.name for p in paths)}; keep one")
    shards = sorted(n for s, n in found if s == "train" and n is not None)
    if shards and ("train", None) in found:
        raise bad(f"both {found['train', None][0].name} and shards ({found['train', shards[0]][0].name} …); keep one")
    missing = [f"no wiki.{s}.raw[.xz] or wiki.{s}.tokens[.xz]" for s in ("valid", "test") if (s, None) not in found]
    if ("train", None) not in found and not shards:
        missing.insert(0, "no wiki.train.raw[.xz], wiki.train.tokens[.xz] or shards wiki.train.NN.raw[.xz]")
    if missing:
        raise bad("; ".join(missing) + (f" (not recognised: {', '.join(odd)})" if odd else ""))
    train = [found["train", n][0] for n in shards] if shards else found["train", None]
    return {"train": train, "validation": found["valid", None], "test": found["test", None]}


def _files_digest(files: dict) -> str:
    """sha256 of each file's split, name, size and bytes as stored: a fraction of a second for the compressed
    Wikipedia folder, where hashing the decoded text would mean decompressing it on every run."""
    h = hashlib.sha256(b"wikitext files\0")
    for s in SPLITS:
        for p in files[s]:
            h.update(f"{s}\0{p.name}\0{p.stat().st_size}\0".encode())
            with p.open("rb") as f:
                while block := f.read(1 << 20):
                    h.update(block)
    return h.hexdigest()


def wikitext_folder(folder: Path) -> Corpus:
    files = wikitext_files(folder)
    return Corpus(f"wikitext:{folder}", _files_digest(files),
                  lambda split, on_read: _articles(_lines(files[split], on_read)))


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
    if p.is_dir() and _is_wikitext(p):
        return wikitext_folder(p)
    if p.is_dir() or any(ch in source for ch in "*?[") or p.is_file():
        return text_files(source)
    raise SpecError(Loc("--data"), f"'{source}': no such file or folder; {HELP}")
