"""The report's answer table, pure: which family speaks for each side of a rung, and when a rung is not decided; and
the sections a one-rung comparison without seeds (the paper's 100M) keeps or leaves out."""
import textwrap

from archsearch.ladder.config import load_ladder
from archsearch.ladder.plan import Done, Job
from archsearch.ladder.answer import _equal_size, _margin, answer as _answer
from archsearch.ladder.fit import difference, read_off
from archsearch.search.stats import excludes_zero
from archsearch.ladder.report import _fits, _ratios
from archsearch.ladder.results import Cell

LADDER = """
ladder:
  name: t
  lr_grid: [1.0e-3, 3.0e-3]
  rungs:
    a: {params: 100}
families:
  p: {spec: {model: {d_model: 8}}, rungs: {a: {}}}
"""


def _cell(family, pam, val=None, tests=(), lr=1e-3):
    runs = [{"gpu_seconds": 10.0 * (1 + pam), "phase": "grid", "lr": lr}]
    seeds = [{"test_ppl": t, "seed": i + 1} for i, t in enumerate(tests)]
    return Cell(family, "a", 100, 120, 1000, pam, grid={lr: val} if val is not None else {},
                best_lr=lr if val is not None else None, seeds=seeds, runs=runs + seeds)


def _row(tmp_path, cells, gone=None, done=None):
    (tmp_path / "l.yaml").write_text(textwrap.dedent(LADDER))
    table = _answer(load_ladder(tmp_path / "l.yaml"), {(c.family, "a"): c for c in cells}, gone or {}, done or {})
    return table[-1]


def test_the_best_by_validation_speaks_even_before_its_seeds_have_run(tmp_path):
    row = _row(tmp_path, [_cell("pam_a", True, 30.0, [31.0, 31.2]), _cell("pam_b", True, 26.0),
                          _cell("free", False, 28.0, [28.5, 28.7])])
    assert row.startswith("| a | pam_b | – | free | 28.60 ± 0.14 (n = 2) | fewer than 2 seeds a side |")


def test_a_rung_is_not_decided_while_a_family_is_still_choosing_its_rate(tmp_path):
    row = _row(tmp_path, [_cell("pam_a", True, 30.0, [31.0, 31.2]), _cell("slow", True),
                          _cell("free", False, 28.0, [28.5, 28.7])])
    assert "not decided: slow still choosing a rate" in row


def test_a_family_dropped_below_the_rung_does_not_hold_it_up(tmp_path):
    row = _row(tmp_path, [_cell("pam_a", True, 30.0, [31.0, 31.2]), _cell("gone", False),
                          _cell("free", False, 28.0, [28.5, 28.7])], gone={"gone": "too far behind"})
    assert row.startswith("| a | pam_a | 31.10 ± 0.14 (n = 2) | free | 28.60 ± 0.14 (n = 2) | +2.50 [")


def test_a_family_that_failed_at_every_rate_does_not_hold_the_rung_up(tmp_path):
    failed = {j.key: Done(j, None) for j in (Job("broke", "a", lr, 0, "grid") for lr in (1e-3, 3e-3))}
    cells = [_cell("pam_a", True, 30.0, [31.0, 31.2]), _cell("broke", True), _cell("free", False, 28.0, [28.5, 28.7])]
    cells[1].grid = {1e-3: None, 3e-3: None}
    row = _row(tmp_path, cells, done=failed)
    assert row.startswith("| a | pam_a | 31.10 ± 0.14 (n = 2) | free | 28.60 ± 0.14 (n = 2) | +2.50 [")



def test_an_equal_time_reading_says_what_timing_error_moves_it_across_zero():
    line = {10.0: [60.0, 60.6, 59.4], 40.0: [30.0, 30.3, 29.7]}  # 60·(x/10)^−0.5
    near, far = [42.0, 42.4, 41.6], [21.0, 21.2, 20.8]
    assert _margin(line, 20.0, near, {"low": -1.0, "high": 1.0}).startswith(
        "; excludes 0 with the PAM-free side's GPU-seconds ")
    assert _margin(line, 20.0, far, {"low": 20.0, "high": 22.0}) == (
        "; it excludes 0 for any error in the PAM-free side's GPU-seconds from -50.0% to +50.0% (the line's reach)")
    # near the line's end the search reaches only as far as the line: the range it covered is what is said
    assert _margin(line, 35.0, [18.0, 18.2, 17.8], {"low": 13.0, "high": 15.0}, "PAM-containing").endswith(
        "for any error in the PAM-containing side's GPU-seconds from -50.0% to +14.3% (the line's reach)")
    assert _margin(line, 20.0, near, None) == ""


def test_the_timing_error_named_does_move_the_interval_across_zero():
    """The margin's size and direction, checked against the reading itself: just beyond the error named the interval
    has crossed 0, just short of it it has not."""
    line = {10.0: [60.0, 60.6, 59.4], 40.0: [30.0, 30.3, 29.7]}
    near = [42.0, 42.4, 41.6]
    text = _margin(line, 20.0, near, difference(read_off(line, 20.0), near), whose="PAM-containing")
    words = text.split()
    assert words[:7] == [";", "excludes", "0", "with", "the", "PAM-containing", "side's"]
    e = float(words[8].rstrip("%")) / 100 * (1 if words[9] == "larger" else -1)

    def excludes(err):
        return excludes_zero(difference(read_off(line, 20.0 * (1 + err)), near))
    assert not excludes(0.0) and not excludes(e * 0.98) and excludes(e * 1.02)


def test_an_equal_size_reading_uses_the_line_that_reaches_the_other_sides_size(tmp_path):
    """PAM-containing minus PAM-free at one size: the PAM family's line at the PAM-free one's size where that line
    reaches it, else the PAM-free line at the PAM family's size (the sign stays PAM minus PAM-free)."""
    (tmp_path / "l.yaml").write_text(textwrap.dedent(LADDER))
    ladder = load_ladder(tmp_path / "l.yaml")

    def cells(pam_sizes, free_sizes):  # ppl = 60·(n/100)^−0.5 on both lines, seeds ±1%
        out = {}
        for fam, pam, sizes in (("p", True, pam_sizes), ("q", False, free_sizes)):
            for i, n in enumerate(sizes):
                m = 60 * (n / 100) ** -0.5
                c = _cell(fam, pam, m, [m * 0.99, m, m * 1.01])
                c.rung, c.non_embedding = f"r{i}", n
                out[(fam, c.rung)] = c
        return out

    inside = cells([100, 400], [200])  # q's 200 lies on p's line: p reads 42.43 there, as q does
    text = _equal_size(ladder, inside, inside[("p", "r0")], inside[("q", "r0")])
    assert text.startswith("p at 0.0002M: 42.43: +0.00 [")
    below = cells([200, 800], [100, 400])  # q's 100 is below p's line: q's line is read at p's 200
    text = _equal_size(ladder, below, below[("p", "r0")], below[("q", "r0")])
    assert text.startswith("q at 0.0002M: 42.43: ") and "0.00 [" in text
    worse = cells([200, 800], [100, 400])
    for r in worse[("p", "r0")].seeds:
        r["test_ppl"] *= 1.1  # p 10% above q's line at its own size: positive, PAM minus PAM-free
    text = _equal_size(ladder, worse, worse[("p", "r0")], worse[("q", "r0")])
    assert text.startswith("q at 0.0002M: 42.43: +4.24 [+")
    apart = cells([100], [400])  # one size a line: neither reaches the other
    assert _equal_size(ladder, apart, apart[("p", "r0")], apart[("q", "r0")]) == "outside both lines' measured sizes"


PAPER = LADDER + """\
  q: {spec: {model: {d_model: 8}}, rungs: {a: {}}}
"""


def _paper(tmp_path):
    text = textwrap.dedent(PAPER).replace("  rungs:\n    a:", "  seeds: 0\n  ratios: [[p, q]]\n  published:\n"
                                          "    source: paper\n    p / q: {1 epoch: 1.078}\n"
                                          "    p / q tokens/s: {1 epoch: 0.24}\n  rungs:\n    a:")
    (tmp_path / "l.yaml").write_text(text)
    return load_ladder(tmp_path / "l.yaml")


def test_a_one_rung_ladder_without_seeds_compares_rather_than_answers(tmp_path):
    ladder = _paper(tmp_path)
    cells = {("p", "a"): _cell("p", True, 33.0), ("q", "a"): _cell("q", False, 30.0)}
    assert _answer(ladder, cells, {}, {})[0] == "## The comparison"
    assert _fits(ladder, cells) == []  # one size: no power law to fit


def test_ratios_give_perplexity_and_measured_tokens_per_s_beside_the_published_ones(tmp_path):
    ladder = _paper(tmp_path)
    p, q = _cell("p", True, 33.0), _cell("q", False, 30.0)
    p.runs[0]["tokens_per_s"], q.runs[0]["tokens_per_s"] = 300.0, 400.0
    lines = _ratios(ladder, {("p", "a"): p, ("q", "a"): q})
    assert "| a | 1.100 v | 0.750 |" in lines
    assert "| p / q | 1.078 |" in lines and "| p / q tokens/s | 0.24 |" in lines


def test_speeds_of_two_cards_give_no_tokens_per_s_ratio(tmp_path):
    ladder = _paper(tmp_path)
    p, q = _cell("p", True, 33.0), _cell("q", False, 30.0)
    p.runs[0].update(tokens_per_s=300.0, card="NVIDIA H200")
    q.runs[0].update(tokens_per_s=400.0, card="NVIDIA H100 80GB HBM3")
    assert "| a | 1.100 v | – ‡ |" in _ratios(ladder, {("p", "a"): p, ("q", "a"): q})


def test_a_cell_off_the_studys_timing_basis_is_marked(tmp_path):
    from types import SimpleNamespace

    from archsearch.ladder.report import _table

    ladder = _paper(tmp_path)
    p, q = _cell("p", True, 33.0), _cell("q", False, 30.0)
    p.runs[0]["card"], q.runs[0]["card"] = "NVIDIA H200", "NVIDIA H100 80GB HBM3"
    p.runs[0]["form"] = q.runs[0]["form"] = "graph"
    p.basis = q.basis = ("NVIDIA H200", "waited", "graph")
    rows = _table(ladder, SimpleNamespace(user_attrs={}), {("p", "a"): p, ("q", "a"): q}, {})
    assert "| 20 |" in next(r for r in rows if r.startswith("| p |"))
    assert "| 10 ‡ |" in next(r for r in rows if r.startswith("| q |"))
    from archsearch.ladder.report import _axis  # the header names the basis, and that some cells are off it
    cards = ["NVIDIA H100 80GB HBM3", "NVIDIA H200"]
    assert _axis({("p", "a"): p, ("q", "a"): q}, cards) == (
        "; GPU-seconds and tokens/s timed on NVIDIA H200 (waited loop, graph step; below), but for 1 cell(s) marked ‡, "
        "timed otherwise")
    q.runs[0]["card"] = "NVIDIA H200"
    assert _axis({("p", "a"): p, ("q", "a"): q}, cards).endswith("(waited loop, graph step; below)")


TWO_RUNGS = LADDER.replace("    a: {params: 100}\n", "    a: {params: 100}\n    b: {params: 300}\n").replace(
    "rungs: {a: {}}", "rungs: {a: {}, b: {}}")


def _timed(family, rung, pam, seconds, tests, loop=None, form="graph"):
    seeds = [{"test_ppl": t, "seed": i + 1, "gpu_seconds": seconds, "form": form, **({"loop": loop} if loop else {})}
             for i, t in enumerate(tests)]
    return Cell(family, rung, 100, 120, 1000, pam, grid={1e-3: tests[0]}, best_lr=1e-3, seeds=seeds, runs=seeds)


def test_gpu_seconds_are_read_at_equal_time_only_within_one_training_loop_and_step_form(tmp_path):
    """The PAM family's line (rungs a and b) read at the PAM-free family's GPU-seconds: only when one training loop
    timed both sides (a loop that waited for every step idled the GPU the same milliseconds for every family), each
    in one step form (a compiled step is about twice as quick as a graphed one at 20M)."""
    (tmp_path / "l.yaml").write_text(textwrap.dedent(TWO_RUNGS).replace("lr_grid", "seeds: 2\n  lr_grid"))
    ladder = load_ladder(tmp_path / "l.yaml")

    def row(free_loop, pam_loops, free_seconds=20.0, top_form="graph"):
        cells = {("pam", "a"): _timed("pam", "a", True, 10.0, [30.0, 30.4], pam_loops[0]),
                 ("pam", "b"): _timed("pam", "b", True, 40.0, [24.0, 24.4], pam_loops[1], top_form),
                 ("free", "a"): _timed("free", "a", False, free_seconds, [29.0, 29.4], free_loop)}
        return _answer(ladder, cells, {}, {})[-2]  # rung a's row

    assert " at 20 s: " in row(None, (None, None))  # every run before the loop had a name: one loop
    assert " at 20 s: " in row("overlapped", ("overlapped", "overlapped"))
    assert row("overlapped", (None, None)).endswith("| not read: GPU-seconds timed on two cards, by two training loops "
                                                    "or in two step forms (docs/ladder.md) |")
    assert "not read" in row("overlapped", ("overlapped", "overlapped"), top_form="compile+graph")
    assert "not read" in row("overlapped", ("overlapped", None))
    # beyond the line's measured GPU-seconds it could not be read with one loop either, nor could the PAM-free
    # family's line of one rung be read at the PAM family's: that is what it says
    assert row("overlapped", (None, None), free_seconds=50.0).endswith(
        "| outside both lines' measured range (50 s; 10 s) |")


def test_beyond_the_pam_line_equal_time_reads_the_pam_free_line_at_the_pam_familys_gpu_seconds(tmp_path):
    """As at equal size: where the PAM-free side's GPU-seconds lie beyond the PAM family's line, the PAM-free line
    is read at the PAM family's GPU-seconds, and the difference is still PAM-containing minus PAM-free."""
    (tmp_path / "l.yaml").write_text(textwrap.dedent(TWO_RUNGS).replace("lr_grid", "seeds: 2\n  lr_grid"))
    ladder = load_ladder(tmp_path / "l.yaml")
    cells = {("pam", "a"): _timed("pam", "a", True, 10.0, [60.0, 60.6]),
             ("pam", "b"): _timed("pam", "b", True, 40.0, [30.0, 30.4]),
             ("free", "a"): _timed("free", "a", False, 20.0, [59.0, 59.4]),
             ("free", "b"): _timed("free", "b", False, 80.0, [28.0, 28.4])}
    row = _answer(ladder, cells, {}, {})[-1]  # rung b: the PAM line ends at 40 s, the PAM-free side took 80 s
    # the PAM-free line at 40 s, halfway in log between 20 s and 80 s: sqrt(59.2 · 28.2) = 40.86; PAM's 30.2 minus it
    assert "| free at 40 s: 40.86: -10.66 [-11.72, -9.60], 2.1 df; " in row  # the PAM-free line's interval, negated
    # near the PAM-free line the interval includes 0, and the timing error that moves it is in the PAM side's seconds
    cells[("pam", "b")] = _timed("pam", "b", True, 40.0, [40.5, 41.1])
    row = _answer(ladder, cells, {}, {})[-1]
    assert "| free at 40 s: 40.86: -0.06 [" in row and "; excludes 0 with the PAM-containing side's GPU-seconds " in row
    # with the other side also beyond every line: said so
    cells[("free", "a")] = _timed("free", "a", False, 5.0, [59.0, 59.4])
    cells[("free", "b")] = _timed("free", "b", False, 8.0, [28.0, 28.4])
    assert _answer(ladder, cells, {}, {})[-1].endswith("| outside both lines' measured range (8 s; 40 s) |")


def test_equal_time_is_not_read_across_a_rung_timed_another_way_between_the_two_it_needs(tmp_path):
    """A line of three rungs whose middle one was timed by another loop: a budget between the first two needs that
    rung, so it is not read (not the chord from the first rung to the third); one between the last two is not read
    either, and a line timed one way throughout is."""
    three = LADDER.replace("    a: {params: 100}\n", "    a: {params: 100}\n    b: {params: 300}\n    c: {params: 900}\n")
    (tmp_path / "l.yaml").write_text(textwrap.dedent(three.replace("rungs: {a: {}}", "rungs: {a: {}, b: {}, c: {}}")
                                                     .replace("lr_grid", "seeds: 2\n  lr_grid")))
    ladder = load_ladder(tmp_path / "l.yaml")

    def row(middle_loop):
        cells = {("pam", "a"): _timed("pam", "a", True, 10.0, [60.0, 60.6], "overlapped"),
                 ("pam", "b"): _timed("pam", "b", True, 40.0, [30.0, 30.4], middle_loop),
                 ("pam", "c"): _timed("pam", "c", True, 160.0, [20.0, 20.4], "overlapped"),
                 ("free", "a"): _timed("free", "a", False, 20.0, [29.0, 29.4], "overlapped")}
        return _answer(ladder, cells, {}, {})[-3]  # rung a's row

    assert row("overlapped").split(" | ")[-1].startswith("pam at 20 s: ")
    assert row(None).endswith("| not read: GPU-seconds timed on two cards, by two training loops or in two step forms "
                              "(docs/ladder.md) |")
