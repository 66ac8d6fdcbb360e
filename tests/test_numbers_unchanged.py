"""Refactors keep every number: on CPU, one thread, fixed seeds, a two-layer model of each memory family (the paper's
complex skeleton of complex_norm, cgu and complex_linear included) trains a few steps through the training step's
loss (graph_step.LMLoss), then runs a prefill and decodes a few tokens eagerly and in the forms a compiled decode step
takes; the per-step losses, hashes of the weights and of the logits, the FLOPs counted on a training step and the
cost pass's analytic costs must equal, bit for bit, those recorded in tests/fixtures/numbers_unchanged.json.

Bit for bit holds on one set-up only: another torch, or another kind of CPU (MKL and oneDNN take other paths on AMD
than on Intel, and by vector width), rounds differently. The file keeps one recording per set-up (torch version, CPU
vector capability and vendor); a run on a set-up with no recording of its own must equal one of its torch version's
recordings (no change of the code makes a model's numbers those of another CPU's), else it skips and says how to
record it. `python tests/test_numbers_unchanged.py --write` records this set-up, from a commit whose numbers a
recorded set-up has checked. Write it again only for a change that means to alter the numbers, and say so in its
commit message.
"""
import platform
import hashlib
import json
import sys
from pathlib import Path

import pytest
import torch

FIXTURE = Path(__file__).parent / "fixtures" / "numbers_unchanged.json"
REAL = {"embedding": None, "norm": "rmsnorm", "channel": "swiglu", "head": ["rmsnorm"]}
COMPLEX = {"embedding": {"blocks": ["complex_norm"]}, "norm": "complex_norm", "channel": "cgu",
           "head": ["complex_norm", "complex_linear", "complex_norm"]}
FAMILIES = {  # mixer and skeleton; chunk 16 < T = 32 runs the chunked forms, the default chunk the dual form
    "pam_paper": ({"block": "pam", "config": {"heads": 2, "head_dim": 8, "chunk": 16}}, COMPLEX),
    "pam": ({"block": "pam", "config": {"heads": 2, "head_dim": 8, "gsp": "channel"}}, REAL),
    "linear_attention": ({"block": "linear_attention", "config": {"heads": 2, "head_dim": 8, "chunk": 16}}, REAL),
    "linear_attention_elu1": ({"block": "linear_attention", "config": {"heads": 2, "head_dim": 8, "rope": False,
                                                                       "feature_map": "elu1", "decay": "fixed"}},
                              REAL),
    "holographic": ({"block": "holographic", "config": {"heads": 2, "head_dim": 16, "chunk": 16}}, REAL),
    "holographic_hrr": ({"block": "holographic", "config": {"heads": 2, "head_dim": 16, "binding": "hrr"}}, REAL),
    "softmax_attention": ({"block": "softmax_attention", "config": {"heads": 2, "rope": True}}, REAL),
}
STEPS, BATCH, SEQ, VOCAB = 4, 4, 32, 64


def _doc(family: str) -> dict:
    mixer, skel = FAMILIES[family]
    doc = {"model": {"d_model": 32, "seq_len": SEQ, "vocab": VOCAB},
           "stack": {"depth": 2, "norm": skel["norm"], "sublayers": [mixer, {"block": skel["channel"]}]},
           "head": {"blocks": skel["head"], "tied": True}}
    if skel["embedding"]:
        doc["embedding"] = skel["embedding"]
    return doc


def _digest(tensors) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()[:24]


def _numbers(family: str) -> dict:
    from archsearch.compiler import compile_spec
    from archsearch.flops import count
    from archsearch.graph_step import LMLoss, micro_loss
    from archsearch.lower import lower
    from archsearch.spec import parse

    torch.manual_seed(0)
    ir = compile_spec(parse(_doc(family), f"{family}.yaml"))
    model = lower(ir)
    loss_fn = LMLoss(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, fused=True)  # fused: as on a GPU
    gen = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(STEPS):
        ids = torch.randint(0, VOCAB, (BATCH, SEQ + 1), generator=gen)
        losses.append(repr(micro_loss(loss_fn, torch.autocast("cpu", enabled=False), ids[:, :-1], ids[:, 1:],
                                      1).item()))
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    ids = torch.randint(0, VOCAB, (2, SEQ + 1), generator=gen)
    flops, _ = count(lambda: micro_loss(loss_fn, torch.autocast("cpu", enabled=False), ids[:, :-1], ids[:, 1:], 1))
    model.zero_grad(set_to_none=True)
    model.eval()
    decoded = {}
    with torch.no_grad():
        for form in ("eager", "compiled"):
            state, out = model.init_state(2), []
            with pytest.MonkeyPatch.context() as mp:
                if form == "compiled":  # the forms a compiled decode step takes, run eagerly (tests/test_decode.py)
                    mp.setattr(torch.compiler, "is_compiling", lambda: True)
                for t in range(6):
                    logits, state = model.step(ids[:, t], state)
                    out.append(logits)
            decoded[form] = _digest(out)
        prefill = _digest([model(ids[:, :SEQ])])
    return {"losses": losses, "weights": _digest(model.state_dict().values()), "flops": flops, "cost": dict(ir.meta),
            "prefill": prefill, "decode": decoded}


def _all() -> dict:
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)  # one thread repeats a run bit for bit (archsearch.train.train)
    torch.use_deterministic_algorithms(True)
    try:
        return {family: _numbers(family) for family in FAMILIES}
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


@pytest.fixture(scope="module")
def now() -> dict:
    return _all()


def setup() -> dict:
    vendor = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("vendor_id")), None) if Path("/proc/cpuinfo").is_file() else None
    return {"torch": torch.__version__, "cpu": f"{torch.backends.cpu.get_cpu_capability()} "
                                               f"{vendor or platform.processor() or platform.machine()}"}


@pytest.mark.parametrize("family", FAMILIES)
def test_numbers_are_those_recorded(family, now):
    here = setup()
    same_torch = [r for r in json.loads(FIXTURE.read_text())["recordings"] if r["setup"]["torch"] == here["torch"]]
    if not same_torch:
        pytest.skip(f"no numbers recorded under torch {here['torch']}")
    own = [r for r in same_torch if r["setup"] == here]
    if own:
        assert now[family] == own[0]["families"][family]
    elif not any(now[family] == r["families"][family] for r in same_torch):
        pytest.skip(f"no numbers recorded on this set-up ({here['cpu']}), and another CPU rounds differently: "
                    "record it with `python tests/test_numbers_unchanged.py --write` at a commit a recorded set-up "
                    "has checked")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/test_numbers_unchanged.py --write   (records the numbers of this checkout)")
    import subprocess

    sys.path.insert(0, str(FIXTURE.parents[2]))  # the checkout's own archsearch and blocks

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=FIXTURE.parent).stdout.strip()
    doc = json.loads(FIXTURE.read_text())
    here = setup()
    doc["recordings"] = [r for r in doc["recordings"] if r["setup"] != here] + [
        {"setup": here, "commit": commit, "families": _all()}]
    FIXTURE.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"recorded {here} in {FIXTURE}")
