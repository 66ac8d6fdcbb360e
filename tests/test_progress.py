"""archsearch.progress: what workers print is whole lines."""
import io

from archsearch.progress import whole_line


class Recorder(io.StringIO):
    def __init__(self):
        super().__init__()
        self.writes = []

    def write(self, s):
        self.writes.append(s)
        return super().write(s)


def test_a_workers_line_is_one_write_with_its_newline():
    """Workers share the coordinator's pipes: a line written in two pieces (print's text, then its end) once let
    another worker's line land in between, and the line-by-line reading of the output missed both."""
    out = Recorder()
    whole_line(out, "[worker 2] storage … back after 2.1 s: carrying on")
    assert out.writes == ["[worker 2] storage … back after 2.1 s: carrying on\n"]


class Terminal(Recorder):
    def isatty(self):
        return True


def test_a_workers_progress_is_whole_lines_that_say_whose_even_on_a_terminal(monkeypatch):
    """Workers share the coordinator's terminal: redrawing one line in place from several processes garbles it."""
    from archsearch.progress import Progress

    monkeypatch.setenv("ARCHSEARCH_WORKER", "3")
    out = Terminal()
    bar = Progress(10, "training", stream=out)
    bar.update(4, "loss 3.2", force=True)
    bar.close()
    assert len(out.writes) == 1 and out.writes[0].startswith("[worker 3] training 4/10 ( 40%) loss 3.2 [")
    assert out.writes[0].endswith("]\n") and "\r" not in out.writes[0]


def test_outside_a_worker_a_terminal_line_is_redrawn_in_place(monkeypatch):
    from archsearch.progress import Progress

    monkeypatch.delenv("ARCHSEARCH_WORKER", raising=False)
    out = Terminal()
    bar = Progress(10, "training", stream=out)
    bar.update(4, force=True)
    bar.close()
    assert out.writes[0].startswith("\r\033[Ktraining 4/10") and out.getvalue().endswith("\n")
