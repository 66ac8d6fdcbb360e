"""Tasks: where batches come from and how a model is scored. `lm` (a corpus + tokenizer; perplexity and bits per
byte over a whole split) and `mqar` (associative recall; accuracy on query positions)."""
from __future__ import annotations

import hashlib
import math
from contextlib import nullcontext

import numpy as np
import torch
import torch.nn.functional as F

from .data import cache, corpora, lm, mqar, tokenizers
from .errors import Loc, SpecError
from .task_and_train import TaskConfig


EVAL_TOKENS = {"cpu": 8_192, "cuda": 32_768}  # tokens in one evaluation forward, at most
EVAL_LOGIT_BYTES = 1 << 28  # and at most this many bytes of fp32 logits (256 MiB)


def eval_batch(seq_len: int, vocab: int, device) -> int:
    """Windows scored per forward: small models are launch-bound at 8 windows (a smoke-space PAM at T = 64 scored
    120k tokens in 1.28 s at 8 windows a forward, 0.70 s at 128, 0.96 s at 512, on 2 CPU cores; the tiny transformer
    at T = 256 in 2.74 s at 8 and 32, 3.83 s at 128), so as many as these bounds allow; never fewer than 8."""
    tokens = EVAL_TOKENS["cuda" if torch.device(device).type == "cuda" else "cpu"]
    return max(8, min(tokens // seq_len, EVAL_LOGIT_BYTES // (4 * seq_len * vocab)))


class LMTask:
    kind = "lm"

    def __init__(self, cfg: TaskConfig, corpus: corpora.Corpus | None = None):
        corpus = corpus or corpora.load(cfg.data)  # a WikiText folder is only hashed here, its text read on a miss
        self.tokenizer = tokenizers.make(cfg.tokenizer, corpus, cache.cache_dir(), cfg.vocab_size)
        self.streams = cache.tokens(corpus, self.tokenizer)
        self.split_bytes = cache.split_bytes(corpus, self.tokenizer)  # stored with the tokens: a hit reads no text
        self.vocab_size = self.tokenizer.vocab_size
        self.name = f"{corpus.name} / {self.tokenizer.id}"

    @classmethod
    def from_streams(cls, streams: dict, split_bytes: dict, vocab_size: int, name: str = "streams") -> "LMTask":
        """A task over token arrays already in hand (tests, notebooks)."""
        task = cls.__new__(cls)
        task.streams, task.split_bytes, task.vocab_size, task.name = streams, split_bytes, vocab_size, name
        return task

    def train_batch(self, batch: int, seq_len: int, rng: np.random.Generator):
        return lm.train_batch(self.streams["train"], batch, seq_len, rng)

    def digest(self) -> str:
        """A hash of every split's tokens: two machines (or a tokenizer trained again) give the same only for the same
        tokens, which a resumed study needs for its runs to compare."""
        h = hashlib.sha256()
        for split in sorted(self.streams):
            arr = np.ascontiguousarray(self.streams[split])
            h.update(f"{split}:{arr.dtype.str}:{len(arr)};".encode())
            h.update(memoryview(arr).cast("B"))
        return h.hexdigest()

    def check_length(self, seq_len: int) -> None:
        """A training window needs seq_len + 1 tokens of the train split (and a random start among them)."""
        n = len(self.streams["train"])
        if n < seq_len + 2:
            raise SpecError(Loc("task.data"), f"{self.name}: the train split has {n:,} tokens, too few for one "
                                              f"training window of {seq_len} (+1); use more text or a shorter seq_len")

    def unigram_ppl(self, split: str = "validation") -> float:
        """Perplexity of the add-one unigram model fitted on train: the floor any model must beat."""
        counts = np.bincount(np.asarray(self.streams["train"]), minlength=self.vocab_size).astype(np.float64) + 1
        logp = np.log(counts / counts.sum())
        target = np.asarray(self.streams[split][1:])
        return float(np.exp(-logp[target].mean()))

    @torch.no_grad()
    def evaluate(self, model, seq_len: int, device, *, split: str = "validation", max_tokens: int | None = None,
                 batch: int | None = None, autocast=None) -> dict:
        """Perplexity = exp(total NLL / predicted tokens) over non-overlapping windows of seq_len covering the split
        (or its first max_tokens tokens); bits per byte = total NLL / ln 2 / UTF-8 bytes covered. Windows are scored
        `batch` at a time (default: eval_batch)."""
        was_training = model.training
        model.eval()
        total, count = 0.0, 0
        batch = batch or eval_batch(seq_len, self.vocab_size, device)
        for x, y in lm.eval_windows(self.streams[split], seq_len, batch, max_tokens):
            with autocast or nullcontext():
                logits = model(x.to(device))
            total += F.cross_entropy(logits.float().flatten(0, 1), y.to(device).flatten(), reduction="sum").item()
            count += y.numel()
        model.train(was_training)
        n_split = len(self.streams[split]) - 1
        covered = self.split_bytes[split] * count / n_split  # exact for the full split
        return {"loss": total / count, "ppl": math.exp(total / count), "bpb": total / math.log(2) / covered,
                "tokens": count, "full": count == n_split}


class MQARTask:
    """Associative recall. Searches select on a `validation` set and reports score a `test` set: fixed sequences drawn
    from two seeds, the same for every model. Beside accuracy, the memory-free floors on the same sequences."""

    kind = "mqar"
    SEEDS = {"validation": 7654321, "test": 1234567}

    def __init__(self, cfg: TaskConfig):
        self.cfg, self.vocab_size = cfg, cfg.mqar_vocab
        self.name = f"mqar {cfg.num_kv_pairs} pairs / vocab {cfg.mqar_vocab}"
        self._sets = {}

    def check_length(self, seq_len: int) -> None:
        """Recall sequences are generated at any length: nothing to check."""

    def train_batch(self, batch: int, seq_len: int, rng: np.random.Generator):
        c = self.cfg
        return mqar.batch(batch, seq_len, c.num_kv_pairs, c.mqar_vocab, c.power_a, rng)

    def test_set(self, seq_len: int, split: str = "test"):
        if (seq_len, split) not in self._sets:  # fixed: the same sequences for every model
            c = self.cfg
            self._sets[seq_len, split] = mqar.batch(c.test_examples, seq_len, c.num_kv_pairs, c.mqar_vocab, c.power_a,
                                                    np.random.default_rng(self.SEEDS[split]))
        return self._sets[seq_len, split]

    def floors(self, seq_len: int, split: str = "test") -> dict:
        """Accuracies reachable without an associative memory, on the same sequences (mqar.floors)."""
        return mqar.floors(*self.test_set(seq_len, split), self.cfg.num_kv_pairs)

    @torch.no_grad()
    def evaluate(self, model, seq_len: int, device, *, split: str = "validation", max_tokens: int | None = None,
                 batch: int = 64, autocast=None) -> dict:
        was_training = model.training
        model.eval()
        x_all, y_all = self.test_set(seq_len, split)
        correct = total = 0
        nll = 0.0
        for i in range(0, len(x_all), batch):
            x, y = x_all[i:i + batch].to(device), y_all[i:i + batch].to(device)
            with autocast or nullcontext():
                logits = model(x).float()
            mask = y != mqar.IGNORE
            correct += (logits.argmax(-1)[mask] == y[mask]).sum().item()
            total += mask.sum().item()
            nll += F.cross_entropy(logits[mask], y[mask], reduction="sum").item()
        model.train(was_training)
        return {"accuracy": correct / total, "loss": nll / total, "ppl": math.exp(nll / total), "tokens": total}


def make(cfg: TaskConfig, corpus: corpora.Corpus | None = None):
    """The task `cfg` names; `corpus`, when given, is cfg.data already loaded (corpora.load)."""
    return MQARTask(cfg) if cfg.kind == "mqar" else LMTask(cfg, corpus)
