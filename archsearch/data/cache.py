"""Tokenised splits cached on disk as flat binary arrays and memory-mapped, keyed by corpus content and tokenizer:
a search tokenises a corpus once. Location: $ARCHSEARCH_CACHE, else ~/.cache/archsearch.

meta.json beside the arrays holds each split's token count, dtype and UTF-8 bytes (corpora.doc_bytes): a run whose
tokens are cached reads those and the arrays, never the corpus text."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

from ..progress import Progress
from .corpora import SPLITS, Corpus, doc_bytes

CHUNK = 1 << 20  # characters of documents encoded at a time (~60 Wikipedia articles, ~250k GPT-2 tokens): a bounded
#                 few tens of MB in Python lists whatever the documents' sizes, never a whole split (45M tokens: GBs)


def cache_dir() -> Path:
    return Path(os.environ.get("ARCHSEARCH_CACHE") or Path.home() / ".cache" / "archsearch")


def dtype(tok) -> np.dtype:
    return np.dtype(np.uint16 if tok.vocab_size <= 65536 else np.uint32)


def _batches(docs, chars: int):
    """Runs of consecutive documents holding at least `chars` characters (the last may hold fewer)."""
    batch, size = [], 0
    for doc in docs:
        batch.append(doc)
        size += len(doc)
        if size >= chars:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def encode_chunks(tok, docs, chars: int = CHUNK):
    """(token array, UTF-8 bytes) for each run of documents of about `chars` characters, in order: every document is
    preceded by end-of-text, so its first token is predicted too. Concatenated, the arrays are the split's stream."""
    kind = dtype(tok)
    for batch in _batches(docs, chars):
        ids = tok.encode_batch(batch) if hasattr(tok, "encode_batch") else [tok.encode(d) for d in batch]
        arr, pos = np.empty(sum(len(x) + 1 for x in ids), kind), 0
        for x in ids:
            arr[pos] = tok.eot
            arr[pos + 1:pos + 1 + len(x)] = x
            pos += 1 + len(x)
        yield arr, sum(doc_bytes(d) for d in batch)


def _folder(corpus: Corpus, tok, root: Path | None) -> Path:
    return (root or cache_dir()) / "tokens" / f"{corpus.fingerprint[:16]}-{tok.id}"


def _write_split(corpus: Corpus, tok, split: str, path: Path) -> dict:
    """Stream one split's tokens into `path` with a progress line; its entry of meta.json."""
    n_tokens = n_bytes = 0
    read = 0.0  # the fraction of the split's stored bytes read so far, which the corpus reports

    def on_read(done: int, total: int) -> None:
        nonlocal read
        read = done / max(total, 1)

    bar = Progress(100, f"tokenising {split}")
    bar.last = bar.start  # off a terminal, the first line only after `every` seconds: short work prints its result
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    try:
        with tmp.open("wb") as out:
            for arr, size in encode_chunks(tok, corpus.documents(split, on_read)):
                arr.tofile(out)
                n_tokens, n_bytes = n_tokens + arr.size, n_bytes + size
                bar.update(round(100 * read), f"{n_tokens:,} tokens")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    bar.update(100, f"{n_tokens:,} tokens", force=True)
    bar.close()
    return {"tokens": n_tokens, "dtype": dtype(tok).name, "bytes": n_bytes}


def _meta(corpus: Corpus, tok, root: Path | None) -> dict:
    """The cache entry's meta.json, tokenising the corpus first on a miss."""
    folder = _folder(corpus, tok, root)
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        print(f"{corpus.name}: tokenising with {tok.id}, once (cached in {folder})", file=sys.stderr)
        meta = {"corpus": corpus.name, "tokenizer": tok.id, "vocab_size": tok.vocab_size,
                "splits": {s: _write_split(corpus, tok, s, folder / f"{s}.bin") for s in SPLITS}}
        tmp = meta_path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(meta, indent=1))
        tmp.replace(meta_path)  # written last: its presence means the cache is complete
    return json.loads(meta_path.read_text())


def tokens(corpus: Corpus, tok, root: Path | None = None) -> dict[str, np.ndarray]:
    """split → read-only memory-mapped token array (document separators included)."""
    meta, folder = _meta(corpus, tok, root), _folder(corpus, tok, root)
    return {s: np.memmap(folder / f"{s}.bin", dtype=meta["splits"][s]["dtype"], mode="r",
                         shape=(meta["splits"][s]["tokens"],)) for s in SPLITS}


def split_bytes(corpus: Corpus, tok, root: Path | None = None) -> dict[str, int]:
    """split → UTF-8 bytes (Corpus.bytes), from the cache: the corpus text is read only to fill a miss."""
    return {s: v["bytes"] for s, v in _meta(corpus, tok, root)["splits"].items()}
