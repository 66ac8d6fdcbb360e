"""Hostile YAML: whatever parses must end as a compiled IR or a SpecError (one located line), never another exception.
Property-based: hypothesis generates documents, and mutations of the shipped specs and search spaces, and shrinks any
failure to a small one."""
import re
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from archsearch import cli
from archsearch.compiler import compile_spec
from archsearch.errors import SpecError
from archsearch.ladder.config import is_ladder_file, load_ladder
from archsearch.search.space import load_space
from archsearch.spec import parse_text
from archsearch.yamlloc import MAX_CHARS, MAX_DEPTH, MAX_VALUES

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted((ROOT / "examples").glob("*.yaml"))
SPACES = sorted((ROOT / "search_spaces").glob("*.yaml"))
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

keys = st.one_of(st.text(max_size=12), st.integers(-3, 3), st.booleans(), st.none(), st.floats(allow_nan=False))
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(), st.text(max_size=20),
                    st.sampled_from(["auto", "data", "head", "pam", "mlp", "rmsnorm", "bf16", "1e-3", "-1", "0"]))
documents = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                          st.dictionaries(keys, inner, max_size=4)), max_leaves=30)


def _compile(text: str, file: str = "fuzz.yaml"):
    """Parse and compile (no module is built, so a huge d_model costs nothing); SpecError is the one allowed end."""
    try:
        compile_spec(parse_text(text, file), echo=lambda *_: None)
    except SpecError as e:
        assert "\n" not in str(e) and str(e).startswith(file), str(e)


def _space(text: str, folder: Path):
    path = folder / "space.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_space(path)
    except SpecError as e:
        assert "\n" not in str(e) and str(e).startswith(str(path)), str(e)


@FUZZ
@given(documents)
def test_any_document_is_a_spec_or_one_error(doc):
    _compile(yaml.safe_dump(doc))


@FUZZ
@given(st.text(max_size=300))
def test_any_text_is_a_spec_or_one_error(text):
    _compile(text)


def _paths(doc, prefix=()):
    """Every (path) to a value in a plain YAML document."""
    yield prefix
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for k, v in items:
        yield from _paths(v, prefix + (k,))


@st.composite
def mutated(draw, files):
    """A shipped file with one value replaced, one key dropped or one key added."""
    doc = yaml.safe_load(draw(st.sampled_from(files)).read_text())
    paths = list(_paths(doc))[1:]
    path = draw(st.sampled_from(paths))
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    action = draw(st.sampled_from(["replace", "drop", "add"]))
    if action == "replace":
        parent[path[-1]] = draw(documents)
    elif action == "drop":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[draw(keys)] = draw(documents)
    else:
        parent.append(draw(documents))
    return yaml.safe_dump(doc)


@FUZZ
@given(mutated(SPECS))
def test_a_mutated_example_is_a_spec_or_one_error(text):
    _compile(text)


@FUZZ
@given(text=mutated(SPACES))
def test_a_mutated_search_space_loads_or_gives_one_error(tmp_path_factory, text):
    _space(text, tmp_path_factory.getbasetemp())


def _laughs(levels: int = 9) -> str:
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


HOSTILE = {
    "self_alias": ("model: &m {d_model: 32, seq_len: 16, again: *m}\n", "a cycle"),
    "self_alias_list": ("model: &m [1, *m]\n", "a cycle"),
    "deep_lists": ("model: " + "[" * 5000 + "]" * 5000 + "\n", f"nested more than {MAX_DEPTH} levels deep"),
    "deep_maps": ("model: " + "{a: " * 200 + "1" + "}" * 200 + "\n", f"nested more than {MAX_DEPTH} levels deep"),
    "billion_laughs": (_laughs(), f"expands to more than {MAX_VALUES:,} values"),
    "huge": ("model: {d_model: 32}\n" + "# padding\n" * (MAX_CHARS // 10 + 1), f"at most {MAX_CHARS:,}"),
    "int_key": ("model: {1: 32, seq_len: 16}\n", "mapping keys must be names, got an integer ('1')"),
    "bool_key": ("yes: 1\nmodel: {d_model: 32, seq_len: 16}\n", "got a boolean ('yes')"),
    "null_key": ("~: 1\n", "got null ('~')"),
    "merge_key": ("base: &b {d_model: 32}\nmodel: {<<: *b, seq_len: 16}\n", "merge keys ('<<') are not supported"),
    "nul_char": ("model: \x00\n", "unacceptable character #x0000"),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_documents_fail_fast_with_their_reason(name):
    text, reason = HOSTILE[name]
    start = time.perf_counter()
    with pytest.raises(SpecError, match=f"^{name}.yaml.*{re.escape(reason)}"):
        parse_text(text, f"{name}.yaml")
    assert time.perf_counter() - start < 5


def test_a_hostile_spec_is_one_line_and_exit_2_from_the_cli(tmp_path, capsys):
    path = tmp_path / "laughs.yaml"
    path.write_text(_laughs())
    assert cli.main(["compile", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(str(path)) and "aliases repeated" in err, err


def test_every_shipped_file_is_far_inside_the_limits():
    for path in SPECS + SPACES:
        assert len(path.read_text()) < MAX_CHARS / 10
        if path.parent.name == "search_spaces":
            load_ladder(path) if is_ladder_file(path) else load_space(path)
        else:  # --vocab supplies a `vocab: data` spec's vocabulary; a fixed one must match the data's
            fixed = "vocab: 50257" in path.read_text()
            compile_spec(path, vocab=None if fixed else 512, echo=lambda *_: None)
