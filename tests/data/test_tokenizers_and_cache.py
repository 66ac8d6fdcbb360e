"""Tokenizers (bytes, trained byte-level BPE, GPT-2 BPE offline) and the memory-mapped token cache."""
import os

import numpy as np
import pytest

from archsearch.data import cache, corpora, tokenizers
from archsearch.errors import SpecError


@pytest.fixture(scope="module")
def wiki(root=None):
    from pathlib import Path

    return corpora.load(str(Path(__file__).parents[1] / "fixtures/wikitext"))


def test_bytes_round_trip():
    tok = tokenizers.ByteTokenizer()
    assert tok.encode("héllo") == list("héllo".encode()) and tok.decode(tok.encode("héllo")) == "héllo"
    assert tok.vocab_size == 257 and tok.eot == 256


def test_bpe_is_trained_on_train_and_cached(wiki, tmp_path):
    tok = tokenizers.make("bpe", wiki, tmp_path, vocab_size=300)
    text = "The Lighthouse of Varn"
    assert tok.decode(tok.encode(text)) == text
    assert len(tok.encode(text)) < len(text.encode())  # merges learned from the training split
    files = list((tmp_path / "tokenizers").glob("*.json"))
    assert len(files) == 1
    again = tokenizers.make("bpe", wiki, tmp_path, vocab_size=300)
    assert again.encode(text) == tok.encode(text)


def test_gpt2_without_the_file_says_what_to_provide(monkeypatch, tmp_path):
    pytest.importorskip("tiktoken")
    monkeypatch.setenv("ARCHSEARCH_GPT2_BPE", str(tmp_path / "missing.tiktoken"))
    with pytest.raises(SpecError, match="ARCHSEARCH_GPT2_BPE: '.*missing.tiktoken': no such file"):
        tokenizers.make("gpt2", None, tmp_path)


@pytest.mark.skipif(not os.environ.get("ARCHSEARCH_GPT2_BPE"), reason="needs a local gpt2.tiktoken file")
def test_gpt2_offline_from_a_file(tmp_path):
    tok = tokenizers.make("gpt2", None, tmp_path)
    assert tok.encode("Hello world") == [15496, 995] and tok.eot == 50256


def test_unknown_tokenizer():
    with pytest.raises(SpecError, match="unknown tokenizer 'bpee' \\(did you mean 'bpe'\\?\\)"):
        tokenizers.make("bpee", None, None)


def test_cache_is_memory_mapped_and_not_rebuilt(wiki, tmp_path, monkeypatch):
    tok = tokenizers.ByteTokenizer()
    arrays = cache.tokens(wiki, tok, root=tmp_path)
    assert isinstance(arrays["train"], np.memmap) and arrays["train"].dtype == np.uint16
    docs = wiki.splits["validation"]
    assert list(arrays["validation"]) == [256] + list(docs[0].encode())
    monkeypatch.setattr(tok, "encode", lambda text: (_ for _ in ()).throw(AssertionError("re-tokenised")))
    again = cache.tokens(wiki, tok, root=tmp_path)
    assert np.array_equal(again["train"], arrays["train"])
