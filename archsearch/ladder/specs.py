"""A ladder's (family, rung) as a spec: the family's spec with the rung's overrides, the ladder's task and train
settings (with the rung's own train settings laid on), and the run's rate, seed and token budget; and its size in
non-embedding parameters."""
from __future__ import annotations

from dataclasses import replace

from ..errors import Loc, SpecError
from ..ir import IR
from ..search.sampling import merge
from ..spec import Spec, parse
from .config import Ladder
from .plan import Job


def plain(value):
    """YAML data as plain dicts and lists (the located mappings the loader returns do not dump)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def spec_doc(ladder: Ladder, family: str, rung: str, *, lr: float | None = None, seed: int | None = None,
             tokens: int | None = None) -> dict:
    """The plain spec document of one run. The vocabulary is the task tokenizer's (a family's own `vocab` is
    dropped: every family is measured on the same tokens)."""
    fam = ladder.family(family)
    doc = plain(merge(fam.spec, fam.rungs[rung]))
    doc.setdefault("model", {}).pop("vocab", None)
    doc["task"] = plain(ladder.task)
    train = merge(merge(doc.get("train") or {}, plain(ladder.train)), plain(ladder.rung(rung).train))
    train.update({k: v for k, v in (("lr", lr), ("seed", seed), ("tokens", tokens)) if v is not None})
    doc["train"] = train
    return doc


def spec_of(ladder: Ladder, job: Job, tokens: int | None = None) -> Spec:
    doc = spec_doc(ladder, job.family, job.rung, lr=job.lr, seed=job.seed, tokens=tokens)
    return parse(doc, f"{ladder.file}#{job.family}@{job.rung}")


def non_embedding(ir: IR) -> int:
    """Parameters outside the token (and position) table and an untied output projection: the size scaling laws
    count (Kaplan et al. 2020), so that the vocabulary does not set a model's place on the ladder."""
    tables = sum(n.meta.get("params", 0) for n in ir.nodes() if n.name in ("embed", "output"))
    return ir.meta["params"] - tables


def tokens_for(ladder: Ladder, non_emb: int, batch_tokens: int) -> int:
    """tokens_per_param × size (or the ladder's fixed `tokens`), in whole optimiser steps (at least one)."""
    want = ladder.tokens if ladder.tokens is not None else ladder.tokens_per_param * non_emb
    return max(1, round(want / batch_tokens)) * batch_tokens


def check_size(ladder: Ladder, family: str, rung: str, non_emb: int) -> None:
    target = ladder.rung(rung).params
    if abs(non_emb - target) > ladder.tolerance * target:
        fam = ladder.family(family)
        raise SpecError(Loc(fam.loc.file, fam.loc.line, f"families.{family}.rungs.{rung}"),
                        f"{non_emb:,} non-embedding parameters, more than {ladder.tolerance:.0%} from the rung's "
                        f"target {target:,.0f}: change this family's overrides for '{rung}'")


def with_sides(ladder: Ladder, sizes: dict) -> Ladder:
    """The ladder knowing which family × rung holds a PAM layer (its built spec's mixers, as `sizes` records them,
    the report's test too): a rung's finalists are the best family of each side. Unknown (None) without sizes."""
    if not sizes or any("mixers" not in s for s in sizes.values()):
        return replace(ladder, pam_cells=None)
    return replace(ladder, pam_cells=frozenset(key for key, s in sizes.items() if holds_pam(s)))


def holds_pam(size: dict) -> bool:
    """Whether a family × rung, as the study's `sizes` records it, has a PAM layer: its side in the answer."""
    return "pam" in size.get("mixers", [])
