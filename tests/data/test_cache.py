"""The token cache: the chunked encoder against the obvious one, byte counts kept with the tokens, and a cache hit
that never reads the corpus text."""
import lzma
import os
import re
from pathlib import Path

import numpy as np
import pytest

from archsearch.data import cache, corpora, tokenizers
from archsearch.task_and_train import TaskConfig
from archsearch.tasks import LMTask


def reference_stream(tok, docs) -> np.ndarray:
    """The straightforward encoder (the cache's before it went chunked): one Python list for the whole split."""
    out = []
    for d in docs:
        out.append(tok.eot)
        out.extend(tok.encode(d))
    return np.asarray(out, dtype=np.uint16 if tok.vocab_size <= 65536 else np.uint32)


class WideBytes(tokenizers.ByteTokenizer):
    """Bytes with a vocabulary past 16 bits and an end-of-text id that needs them: the uint32 case."""

    def __init__(self):
        super().__init__()
        self.id, self.vocab_size, self.eot = "widebytes", 70000, 69999


@pytest.fixture(scope="module")
def wiki():
    return corpora.load(str(Path(__file__).parents[1] / "fixtures/wikitext"))


@pytest.mark.parametrize("chars", [1, 150, 400, cache.CHUNK])
def test_chunked_encoder_matches_the_reference(wiki, tmp_path, chars):
    toks = [tokenizers.ByteTokenizer(), WideBytes(), tokenizers.make("bpe", wiki, tmp_path, vocab_size=300)]
    assert hasattr(toks[2], "encode_batch")  # the batched path is covered too
    if os.environ.get("ARCHSEARCH_GPT2_BPE"):
        toks.append(tokenizers.make("gpt2", None, tmp_path))
    for tok in toks:
        for split in corpora.SPLITS:
            docs = wiki.splits[split]
            parts = list(cache.encode_chunks(tok, docs, chars))
            stream = np.concatenate([a for a, _ in parts])
            want = reference_stream(tok, docs)
            assert stream.dtype == want.dtype and np.array_equal(stream, want), (tok.id, split)
            assert sum(b for _, b in parts) == wiki.bytes(split)
            if chars == 1:
                assert len(parts) == len(docs)  # a chunk a document: every boundary between documents is one


def test_chunks_are_runs_of_documents_of_at_least_so_many_characters():
    assert list(cache._batches(["aaa", "bbb", "ccc", "d" * 10, "e"], 5)) == [["aaa", "bbb"], ["ccc", "d" * 10], ["e"]]
    assert list(cache._batches([], 5)) == []


def test_cache_files_are_the_reference_streams_and_keep_the_byte_counts(wiki, tmp_path):
    tok = tokenizers.ByteTokenizer()
    arrays = cache.tokens(wiki, tok, root=tmp_path)
    for split in corpora.SPLITS:
        assert np.array_equal(arrays[split], reference_stream(tok, wiki.splits[split]))
    assert cache.split_bytes(wiki, tok, root=tmp_path) == {s: wiki.bytes(s) for s in corpora.SPLITS}
    assert not list(tmp_path.rglob("*.tmp*"))


def test_tokenising_says_which_split_and_a_miss_only(wiki, tmp_path, capsys):
    tok = tokenizers.ByteTokenizer()
    cache.tokens(wiki, tok, root=tmp_path)
    err = capsys.readouterr().err
    assert re.search(r"wikitext:.*: tokenising with bytes, once \(cached in .*\)", err)
    assert [line.split(" (")[0] for line in err.splitlines()[1:]] == [
        f"tokenising {s} 100/100" for s in corpora.SPLITS]
    cache.tokens(wiki, tok, root=tmp_path)
    assert capsys.readouterr().err == ""


def _xz_wiki(folder):
    folder.mkdir()
    texts = {"train.00": " = A = \n\n First article . \n", "train.01": " = B = \n\n Second article , é . \n",
             "valid": " = V = \n\n Held out . \n", "test": " = T = \n\n Also held out . \n"}
    for name, text in texts.items():
        (folder / f"wiki.{name}.raw.xz").write_bytes(lzma.compress(text.encode()))
    return folder


def test_a_cache_hit_never_reads_the_corpus_text(tmp_path, monkeypatch):
    folder = _xz_wiki(tmp_path / "wiki")
    cfg = TaskConfig(data=str(folder), tokenizer="bytes")
    first = LMTask(cfg)
    corpus = corpora.load(str(folder))
    assert first.split_bytes == {s: corpus.bytes(s) for s in corpora.SPLITS}
    assert list(first.streams["train"]) == reference_stream(tokenizers.ByteTokenizer(), corpus.splits["train"]).tolist()
    monkeypatch.setattr(corpora, "_lines", lambda *a: (_ for _ in ()).throw(AssertionError("corpus text read")))
    again = LMTask(cfg)  # would raise had it decompressed anything
    assert again.split_bytes == first.split_bytes
    assert all(np.array_equal(again.streams[s], first.streams[s]) for s in corpora.SPLITS)
    (folder / "wiki.train.01.raw.xz").unlink()  # fewer shards: another corpus, tokenised anew
    with pytest.raises(AssertionError, match="corpus text read"):
        LMTask(cfg)
