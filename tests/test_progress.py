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
