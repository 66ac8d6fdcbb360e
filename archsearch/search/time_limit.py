"""Which queued run to start when a time limit is near: shared by a ladder's runs and a search's re-training runs,
whose lengths are known from runs like them."""
from __future__ import annotations

FILL_SECONDS = 60.0  # --fill starts a run that cannot finish only with this long left: resuming it costs a start
# (tokens loaded, a compile at the top rung) that a shorter part would not repay


def pick(waiting: list, estimate, left: float, window: float | None = None, fill: bool = False):
    """The run to start with `left` seconds to go: the plan's next one when it should finish in time (or nothing
    comparable has run yet, so nothing is known), or when it is longer than the whole time limit (`window`) and at
    least half of that is left (it runs in parts, pausing into its checkpoint at each limit); else the first later
    one whose estimate fits, so that the end of a time limit is not left idle; else, with `fill`, at least
    FILL_SECONDS left and a run that one whole limit would hold (a longer one keeps the half-limit rule: a sliver of
    it would not repay its start), the plan's next one all the same, to pause at the limit (the next call on the
    same disk goes on from its checkpoint); None when none fits."""
    if left <= 0 or not waiting:
        return None
    need = estimate(waiting[0])
    if need is None or need <= left or (window is not None and need > window and left >= window / 2):
        return waiting[0]
    later = next((w for w in waiting[1:] if (n := estimate(w)) is not None and n <= left), None)
    if later is not None or not fill or left < FILL_SECONDS or (window is not None and need > window):
        return later
    return waiting[0]
