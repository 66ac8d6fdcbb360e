"""What to train on and how: the `task:` and `train:` sections of a spec (typed, frozen, no torch).
Every field is documented in docs/spec.md; CLI flags override them."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class TaskConfig:
    kind: Literal["lm", "mqar"] = field(default="lm", metadata={"doc": "language modelling, or associative recall"})
    data: str = field(default="embedded", metadata={"doc": "lm: embedded | a WikiText folder | text files | wikitext-103"})
    tokenizer: Literal["bytes", "bpe", "gpt2"] = field(default="bpe", metadata={"doc": "lm tokenizer"})
    vocab_size: int = field(default=8192, metadata={"doc": "bpe: vocabulary size to train"})
    window: Literal["non_overlapping"] = field(default="non_overlapping", metadata={"doc": "evaluation windows"})
    num_kv_pairs: int = field(default=8, metadata={"doc": "mqar: key-value pairs per sequence"})
    mqar_vocab: int = field(default=256, metadata={"doc": "mqar: token vocabulary (keys in the lower half)"})
    power_a: float = field(default=0.01, metadata={"doc": "mqar: power-law exponent of query gaps"})
    test_examples: int = field(default=1000, metadata={"doc": "mqar: fixed test sequences"})


@dataclass(frozen=True)
class TrainConfig:
    tokens: int = field(default=2_000_000, metadata={"doc": "training budget in tokens"})
    batch_tokens: int = field(default=16384, metadata={"doc": "tokens per optimiser step"})
    micro_batch: int | None = field(default=None, metadata={"doc": "sequences per forward (gradient accumulation)"})
    seq_len: int | None = field(default=None, metadata={"doc": "training length; default model.seq_len"})
    lr: float = 1e-3
    min_lr_ratio: float = field(default=0.1, metadata={"doc": "cosine floor as a fraction of lr"})
    warmup: float = field(default=0.05, metadata={"doc": "warm-up as a fraction of the steps"})
    schedule: Literal["cosine", "wsd"] = field(default="cosine", metadata={
        "doc": "after warm-up: cosine to the floor, or wsd (constant, then linear to the floor over the last `decay`)"})
    decay: float = field(default=0.2, metadata={"doc": "wsd: the final fraction of the steps that decays"})
    weight_decay: float = field(default=0.1, metadata={"doc": "AdamW; never on norms, biases, gains, scalars"})
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    evals: int = field(default=4, metadata={"doc": "intermediate evaluations (reported to the search)"})
    eval_tokens: int | None = field(default=131072, metadata={"doc": "cap of intermediate evals; final is full"})
    seed: int = 0
    device: str = field(default="auto", metadata={"doc": "auto | cpu | cuda | cuda:N"})
    precision: Literal["auto", "fp32", "bf16"] = field(default="auto", metadata={"doc": "auto: bf16 on GPU"})
    compile: bool = False
    cuda_graph: bool = field(default=False, metadata={"doc": "GPU: replay each micro-step as a CUDA graph"})
    fused: bool | None = field(default=None, metadata={"doc": "fused AdamW; null: on CUDA only"})
