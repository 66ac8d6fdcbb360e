"""Tokenised splits cached on disk as flat binary arrays and memory-mapped, keyed by corpus content and tokenizer:
a search tokenises a corpus once. Location: $ARCHSEARCH_CACHE, else ~/.cache/archsearch."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .corpora import SPLITS, Corpus


def cache_dir() -> Path:
    return Path(os.environ.get("ARCHSEARCH_CACHE") or Path.home() / ".cache" / "archsearch")


def _encode_split(tok, docs) -> np.ndarray:
    batch = tok.encode_batch(docs) if hasattr(tok, "encode_batch") else [tok.encode(d) for d in docs]
    out = []
    for ids in batch:  # every document is preceded by end-of-text, so its first token is predicted too
        out.append(tok.eot)
        out.extend(ids)
    return np.asarray(out, dtype=np.uint16 if tok.vocab_size <= 65536 else np.uint32)


def tokens(corpus: Corpus, tok, root: Path | None = None) -> dict[str, np.ndarray]:
    """split → read-only memory-mapped token array (document separators included)."""
    folder = (root or cache_dir()) / "tokens" / f"{corpus.fingerprint[:16]}-{tok.id}"
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        meta = {"corpus": corpus.name, "tokenizer": tok.id, "vocab_size": tok.vocab_size, "splits": {}}
        for split in SPLITS:
            arr = _encode_split(tok, corpus.splits[split])
            tmp = folder / f"{split}.bin.tmp{os.getpid()}"
            arr.tofile(tmp)
            tmp.replace(folder / f"{split}.bin")
            meta["splits"][split] = {"tokens": int(arr.size), "dtype": arr.dtype.name, "bytes": corpus.bytes(split)}
        tmp = meta_path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(meta, indent=1))
        tmp.replace(meta_path)  # written last: its presence means the cache is complete
    meta = json.loads(meta_path.read_text())
    return {s: np.memmap(folder / f"{s}.bin", dtype=meta["splits"][s]["dtype"], mode="r",
                         shape=(meta["splits"][s]["tokens"],)) for s in SPLITS}
