"""The shipped ladders parse, and every family sits within its rung's tolerance (compile only, nothing allocated)."""
import pytest

from archsearch.compiler import compile_spec
from archsearch.ladder.config import load_ladder
from archsearch.ladder.plan import Job
from archsearch.ladder.specs import check_size, non_embedding, spec_of, tokens_for


@pytest.mark.parametrize("path, vocab", [("search_spaces/scaling_ladder.yaml", 4096),
                                         ("search_spaces/paper_100m.yaml", 50257),
                                         ("search_spaces/smoke_ladder.yaml", 257)])
def test_every_family_fits_its_rung(root, path, vocab):
    ladder = load_ladder(root / path)
    for fam in ladder.families:
        for rung in fam.rungs:
            spec = spec_of(ladder, Job(fam.name, rung, 1e-3, 0, "grid"))
            n = non_embedding(compile_spec(spec, vocab=vocab))
            check_size(ladder, fam.name, rung, n)
            tokens = tokens_for(ladder, n, spec.train.batch_tokens)
            assert tokens % spec.train.batch_tokens == 0
            if ladder.tokens is None:
                assert tokens == pytest.approx(ladder.tokens_per_param * n, abs=spec.train.batch_tokens)
            else:
                assert tokens == pytest.approx(ladder.tokens, abs=spec.train.batch_tokens)


def test_non_embedding_leaves_out_the_tables(root):
    ir = compile_spec(root / "examples/gpt2_100m.yaml", vocab=50257)
    # 100,283,232 in all; the token table 50257 × 672 and the learned positions 2048 × 672 are the embedding
    assert non_embedding(ir) == 100_283_232 - 50257 * 672 - 2048 * 672


def test_the_report_says_which_rungs_extend_their_rates(root):
    from archsearch.ladder.report import _extends
    ladder = load_ladder(root / "search_spaces/scaling_ladder.yaml")
    assert [(r.extend, r.finalists) for r in ladder.rungs] == [(1, 0), (1, 0), (0, 1)]
    assert _extends(ladder) == ("; at 2m, 6m a best rate at an edge of those tried adds the next rate beyond it "
                                "(up to 1 time); at 20m, once every family's rates have run, the best PAM-containing "
                                "and the best PAM-free family (and every family within 3% of its side's best), each "
                                "whose best rate is at an edge, add the next rate beyond it (1 round), before the "
                                "seeds")


def test_the_papers_ratios_are_printed_beside_the_ladders(root):
    from archsearch.ladder.report import _published
    lines = _published(load_ladder(root / "search_spaces/scaling_ladder.yaml"))
    assert lines[3] == "| ratio | 5M | 10M | 25M | 50M | 100M |"
    assert lines[5:] == ["| pam_paper / sam | 2.18 | 1.85 | 1.84 | 1.34 | 1.36 |",
                         "| pam_paper / gpt2 | 1.48 | 1.41 | – | – | 1.11 |"]
    assert _published(load_ladder(root / "search_spaces/paper_100m.yaml"))[-2:] == [
        "| pam_paper / gpt2 | 1.078 | 1.106 |", "| pam_paper / gpt2 tokens/s | 0.24 | – |"]
