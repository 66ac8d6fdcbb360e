"""The public API is pinned: changing it is a deliberate act that updates this list."""
import archsearch

API = ["GraphedDecoder", "IR", "Loc", "Node", "PASSES", "SequenceModel", "Spec", "SpecError", "__version__", "build", "compile_spec",
       "compile_text", "load_dir", "load_spec", "lower", "parse_text", "register", "run_passes"]


def test_all_is_pinned():
    assert sorted(archsearch.__all__) == sorted(API)


def test_every_name_resolves():
    for name in archsearch.__all__:
        assert getattr(archsearch, name) is not None
