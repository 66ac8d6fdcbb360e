"""The model that lowering produces: an interpreter over a straight-line program of blocks and residual adds.

Imports torch and the standard library only, so `export` can ship this file beside the block sources.
A program is a tuple of ops (name, op, inputs, key): `inputs` index earlier ops' values; `key` names the module in
`blocks` (op "block") or the learned scalar in `scales` (op "add", only when the add has one).

A decode step may run a pre-norm residual sublayer, add(r, block(norm(r))), as one call of the block's optional
`fused_sublayer_step(norm, r, state, scale)` (fused Triton kernels, blocks/fastpath.fused_decode): the block answers
None where it does not apply, and the three ops run as written. Likewise a block op read only by the next op, a
stateless block or the logits, may run as that op's prologue: the block's optional `fused_normed_step(norm, x)`, or
the norm's `fused_logits(x, w)` for the logits against the head's weight w (the paper's head, complex norm →
complex linear → complex norm → tied logits, as two kernels).
"""
from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import nn


class ComplexDropout(nn.Module):
    """Dropout on a stream viewed as complex ([Re | Im] halves): one real mask per complex channel, shared by its Re
    and Im parts, so a dropped channel loses its phase and magnitude together (the PAM paper's v1)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        mask = nn.functional.dropout(x.new_ones(*x.shape[:-1], x.shape[-1] // 2), self.p)
        return x * torch.cat([mask, mask], -1)


class SequenceModel(nn.Module):
    def __init__(self, program, blocks: dict, scales: dict, *, vocab: int, d_model: int, dropout: float,
                 tie_to: str | None, embed_key: str, dropout_mask: str = "real", pad_logits: bool = True):
        """pad_logits: a setting, not a parameter: on a GPU compute the logits against the vocabulary padded to a
        multiple of 64 rows (logits()); archsearch.flops counts with it off."""
        super().__init__()
        self.pad_logits = pad_logits
        self.program = tuple(tuple(op) for op in program)
        self.blocks = nn.ModuleDict(blocks)
        self.scales = nn.ParameterDict({k: nn.Parameter(torch.tensor(float(v))) for k, v in scales.items()})
        self.embed_key, self.tie_to, self.vocab = embed_key, tie_to, vocab
        self.lm_head = None if tie_to else nn.Linear(d_model, vocab, bias=False)
        if self.lm_head is not None:
            nn.init.normal_(self.lm_head.weight, 0.0, 0.02)
        self.drop = ComplexDropout(dropout) if dropout_mask == "complex" else nn.Dropout(dropout)
        self.trace_ops = False  # when set, each op runs in a profiler range named after its node (`archsearch profile`)
        last_use = {}
        for i, (_, _, inputs, _) in enumerate(self.program):
            for j in inputs:
                last_use[j] = i
        # values each op may free once it has run: keeps peak activation memory to what is still needed
        self._free = [tuple(j for j, last in last_use.items() if last == i) for i in range(len(self.program))]
        self._sublayers = self._pre_norm_sublayers(last_use)
        self._prologues = self._prologue_reads(last_use)

    def _pre_norm_sublayers(self, last_use: dict) -> dict:
        """{i: (norm key, block key, add key)} for every three ops i, i+1, i+2 that are norm(r), block(norm) and
        add(r, block) and whose norm and block values nothing else reads: what a decode step may run as one fused
        sublayer step (step())."""
        found = {}
        for i in range(len(self.program) - 2):
            (_, norm, n_in, n_key), (_, block, b_in, b_key), (_, add, a_in, a_key) = self.program[i:i + 3]
            if ((norm, block, add) == ("block", "block", "add") and len(n_in) == 1 and list(b_in) == [i]
                    and list(a_in) == [n_in[0], i + 1] and last_use[i] == i + 1 and last_use[i + 1] == i + 2):
                found[i] = (n_key, b_key, a_key)
        return found

    def _prologue_reads(self, last_use: dict) -> set:
        """Every block op i whose value only op i + 1 reads, op i + 1 reading it alone, a block or the output: where a
        decode step may run op i + 1 with op i (a norm, if op i + 1's fused form takes it) as its prologue (step())."""
        found = set()
        for i in range(len(self.program) - 1):
            (_, op, _, key), (_, nxt, n_in, _) = self.program[i:i + 2]
            if (op == "block" and key != self.embed_key and nxt in ("block", "output") and list(n_in) == [i]
                    and last_use[i] == i + 1):  # not the embedding: its value is dropped out
                found.add(i)
        return found

    def _head_weight(self) -> torch.Tensor:
        return self.lm_head.weight if self.lm_head is not None else self.blocks[self.tie_to].weight

    def logits(self, x: torch.Tensor, keep_padding: bool = False) -> torch.Tensor:
        """Hidden states → logits [..., vocab]; with keep_padding, [..., W ≥ vocab] where the GPU pads the vocabulary
        (columns ≥ vocab are zero: for a loss that leaves them out, which saves slicing them and padding their
        gradient back)."""
        w = self._head_weight()
        vocab = w.shape[0]
        # cuBLAS's fast bf16 GEMMs need aligned rows: 16384 tokens × 768 to GPT-2's 50257 logits took 13.7 ms
        # forward on an H200, padded to 50304 1.95 ms (the padding's logits are sliced off). A few tokens (decoding)
        # only read the table, and padding it would copy it: not below 256 tokens.
        pad = -vocab % 64 if self.pad_logits and x.is_cuda and x.numel() >= 256 * x.shape[-1] else 0
        if pad:
            padded = nn.functional.linear(x, nn.functional.pad(w, (0, 0, 0, pad)))
            return padded if keep_padding else padded[..., :vocab]
        return nn.functional.linear(x, w)

    def _run(self, ids, apply, keep_padding: bool = False, sublayer=None, prologue=None):
        """The program's output. `sublayer(norm key, block key, add key, r)`: the value of a pre-norm sublayer's add
        (self._sublayers, at its norm's op) by a fused step, or None to run its three ops. `prologue(i, x)`: the value
        of op i + 1 with op i as its prologue (self._prologues), or None to run the two ops."""
        vals = [None] * len(self.program)
        skip = 0  # ops a fused step has done after op i (whose value v already holds): a sublayer's block and add
        for i, (name, op, inputs, key) in enumerate(self.program):
            if skip:
                skip -= 1
            else:
                with torch.profiler.record_function(name) if self.trace_ops else nullcontext():
                    v = None
                    if sublayer is not None and i in self._sublayers:
                        v = sublayer(*self._sublayers[i], vals[inputs[0]])
                        skip = 0 if v is None else 2
                    if v is None and prologue is not None and i in self._prologues:
                        v = prologue(i, vals[inputs[0]])
                        skip = 0 if v is None else 1
                    if v is None:
                        v = self._op(op, key, inputs, vals, ids, apply, keep_padding)
            vals[i] = v
            for j in self._free[i]:
                vals[j] = None
        return v

    def _op(self, op, key, inputs, vals, ids, apply, keep_padding):
        if op == "input":
            return ids
        if op == "block":
            v = apply(key, vals[inputs[0]])
            return self.drop(v) if key == self.embed_key else v
        if op == "add":
            branch = self.drop(vals[inputs[1]])
            return vals[inputs[0]] + (branch * self.scales[key] if key in self.scales else branch)
        return self.logits(vals[inputs[0]], keep_padding)

    def forward(self, ids: torch.Tensor, keep_padding: bool = False) -> torch.Tensor:
        """Token ids [B, T] → logits [B, T, V] (the parallel, training form); keep_padding: see logits()."""
        return self._run(ids, lambda key, x: self.blocks[key](x), keep_padding)

    def init_state(self, batch: int, device=None, dtype=None) -> dict:
        """Decode state of every stateful block (mixers' recurrent state or KV cache, the embedding's position)."""
        return {k: b.init_state(batch, device=device, dtype=dtype)
                for k, b in self.blocks.items() if hasattr(b, "init_state")}

    def step(self, ids_t: torch.Tensor, state: dict):
        """One decode step: token ids [B] → logits [B, V], with the updated state. A pre-norm residual sublayer runs
        as its block's fused sublayer step, and a norm read only by a stateless block or the logits as their
        prologue, where the reader has such a form and it applies (see the module's docstring)."""
        new = dict(state)

        def apply(key, x):
            block = self.blocks[key]
            if key in new:
                y, new[key] = block.step(x, new[key])
                return y
            return block(x)

        def sublayer(norm_key, key, add_key, r):
            fused = getattr(self.blocks[key], "fused_sublayer_step", None)
            if fused is None or (self.training and self.drop.p > 0):  # the add drops out the branch
                return None
            scale = self.scales[add_key] if add_key in self.scales else None
            out = fused(self.blocks[norm_key], r, new.get(key), scale)
            if out is None:
                return None
            y, s = out
            if key in new:
                new[key] = s
            return y

        def prologue(i, x):
            norm_key, (_, op, _, key) = self.program[i][3], self.program[i + 1]
            if norm_key in new or key in new:  # a stateful block steps as written (its state would not advance)
                return None
            norm = self.blocks[norm_key]
            if op == "output":
                fused = getattr(norm, "fused_logits", None)
                return None if fused is None else fused(x, self._head_weight())
            fused = getattr(self.blocks[key], "fused_normed_step", None)
            return None if fused is None else fused(norm, x)

        return self._run(ids_t, apply, sublayer=sublayer, prologue=prologue), new
