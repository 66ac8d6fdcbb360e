"""Tokenizers: raw bytes, a byte-level BPE trained on the training split (HF `tokenizers`), and GPT-2 BPE (tiktoken's
r50k_base, loaded offline from a local file). Every tokenizer has an end-of-text id that separates documents."""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import Loc, SpecError

GPT2_ENV = "ARCHSEARCH_GPT2_BPE"


class ByteTokenizer:
    """UTF-8 bytes 0–255, and 256 as end-of-text."""

    def __init__(self):
        self.id, self.vocab_size, self.eot = "bytes", 257, 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids) -> str:
        return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")


class BPETokenizer:
    """A byte-level BPE trained on the corpus's training split with HF `tokenizers`, cached by corpus and size."""

    def __init__(self, corpus, vocab_size: int, cache_dir: Path):
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        self.id, self.vocab_size = f"bpe{vocab_size}", vocab_size
        path = cache_dir / "tokenizers" / f"{corpus.fingerprint[:16]}-bpe{vocab_size}.json"
        if path.is_file():
            tok = Tokenizer.from_file(str(path))
        else:
            tok = Tokenizer(models.BPE())
            tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
            tok.decoder = decoders.ByteLevel()
            trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                          initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
            tok.train_from_iterator(corpus.splits["train"], trainer=trainer)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tok.save(str(tmp))
            tmp.replace(path)
        self.tok = tok
        self.eot = tok.token_to_id("<|endoftext|>")
        self.vocab_size = tok.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text).ids

    def encode_batch(self, texts) -> list[list[int]]:
        # the fast form (tokenizers 0.20+) skips the offsets: the same ids, about 30% quicker
        encode = getattr(self.tok, "encode_batch_fast", self.tok.encode_batch)
        return [e.ids for e in encode(list(texts))]

    def decode(self, ids) -> str:
        return self.tok.decode(list(ids))


class GPT2Tokenizer:
    """GPT-2 BPE (tiktoken r50k_base, vocab 50257, end-of-text 50256), from a local file: $ARCHSEARCH_GPT2_BPE
    (e.g. whisper/assets/gpt2.tiktoken from the openai-whisper sdist) or tiktoken's own cache."""

    def __init__(self):
        try:
            import tiktoken
            from tiktoken.load import load_tiktoken_bpe
            from tiktoken_ext.openai_public import r50k_pat_str
        except ImportError:
            raise SpecError(Loc("tokenizer"), "gpt2 needs tiktoken: pip install tiktoken") from None
        path = os.environ.get(GPT2_ENV)
        try:
            if path:
                if not Path(path).is_file():
                    raise SpecError(Loc(f"${GPT2_ENV}"), f"'{path}': no such file")
                enc = tiktoken.Encoding("r50k_base", pat_str=r50k_pat_str, mergeable_ranks=load_tiktoken_bpe(path),
                                        special_tokens={"<|endoftext|>": 50256}, explicit_n_vocab=50257)
            else:
                enc = tiktoken.get_encoding("r50k_base")
        except SpecError:
            raise
        except Exception:
            raise SpecError(Loc("tokenizer"), f"gpt2: the GPT-2 BPE file is not available offline; set {GPT2_ENV} "
                                              "to a gpt2.tiktoken file (the openai-whisper sdist ships one as "
                                              "whisper/assets/gpt2.tiktoken) or fill TIKTOKEN_CACHE_DIR") from None
        self.enc, self.id, self.vocab_size, self.eot = enc, "gpt2", 50257, 50256

    def encode(self, text: str) -> list[int]:
        return self.enc.encode_ordinary(text)

    def encode_batch(self, texts) -> list[list[int]]:
        return self.enc.encode_ordinary_batch(list(texts))

    def decode(self, ids) -> str:
        return self.enc.decode(list(ids))


def make(name: str, corpus, cache_dir: Path, vocab_size: int = 8192):
    if name == "bytes":
        return ByteTokenizer()
    if name == "bpe":
        return BPETokenizer(corpus, vocab_size, cache_dir)
    if name == "gpt2":
        return GPT2Tokenizer()
    from ..errors import unknown
    raise unknown(Loc("tokenizer"), "tokenizer", name, ("bytes", "bpe", "gpt2"))
