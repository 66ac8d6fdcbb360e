"""One readable Python file from several torch-only modules: the block modules an architecture uses (and the modules
they import from blocks/), and the runtime interpreter.

Each module's source is copied as written, comments included, with three edits so that they can share one namespace:
imports of sibling modules are dropped (their names are defined above in the same file), `module.name` through a
`from . import module` becomes the name itself, and a top-level name that two modules both define is renamed in the
later module (`name__module`). Other imports are gathered at the top once.
"""
from __future__ import annotations

import ast
import inspect
import io
import re
import sys
import tokenize
from types import ModuleType

SELF_ALIAS = re.compile(r"^\s*(\w+) = \1\s*(#.*)?$")


def module_deps(module: ModuleType) -> list[str]:
    """Names of the modules `module` imports relatively (from its own package)."""
    out = []
    for node in ast.parse(inspect.getsource(module)).body:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            out += [node.module] if node.module else [a.name for a in node.names]
    return out


def ordered(modules: list[ModuleType]) -> list[ModuleType]:
    """The modules and every sibling they import, dependencies first."""
    seen, out = set(), []

    def visit(mod):
        if mod.__name__ in seen:
            return
        seen.add(mod.__name__)
        package = mod.__name__.rpartition(".")[0]
        for dep in module_deps(mod):
            visit(sys.modules.get(f"{package}.{dep}" if package else dep) or __import__(f"{package}.{dep}", fromlist=["_"]))
        out.append(mod)

    for m in modules:
        visit(m)
    return out


def _top_level_names(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def _short(mod: ModuleType) -> str:
    return mod.__name__.rpartition(".")[2]


def merge(modules: list[ModuleType]) -> tuple[str, str, dict[str, dict[str, str]]]:
    """(imports header, body, {module: {name: name in the file}}) for the modules in dependency order."""
    imports, bodies, final = [], [], {}
    taken: set[str] = set()
    for mod in modules:
        src = inspect.getsource(mod)
        tree = ast.parse(src)
        short = _short(mod)
        own = _top_level_names(tree)
        rename = {n: f"{n}__{short}" for n in own if n in taken}
        final[short] = {n: rename.get(n, n) for n in own}
        taken |= set(final[short].values())
        alias, modules_as = {}, {}  # names imported from siblings; siblings imported as modules
        drop = set()
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                drop |= set(range(node.lineno, node.end_lineno + 1))
                if isinstance(node, ast.ImportFrom) and node.level == 1:
                    if node.module:
                        alias |= {a.asname or a.name: final[node.module][a.name] for a in node.names}
                    else:
                        modules_as |= {a.asname or a.name: a.name for a in node.names}
                elif not (isinstance(node, ast.ImportFrom) and node.module == "__future__"):
                    imports.append(ast.get_source_segment(src, node))
        if tree.body and isinstance(tree.body[0], ast.Expr) and isinstance(tree.body[0].value, ast.Constant):
            doc = tree.body[0]
            drop |= set(range(doc.lineno, doc.end_lineno + 1))  # the module docstring becomes a comment
            bodies.append(f"# {'-' * 20} {short} {'-' * (90 - len(short))}\n" +
                          "".join(f"# {line}".rstrip() + "\n" for line in doc.value.value.strip().splitlines()))
        else:
            bodies.append(f"# {'-' * 20} {short} {'-' * (90 - len(short))}\n")
        names = {**alias, **rename}
        bodies.append(_rewrite(src, names, modules_as, final, drop))
    header = "\n".join(dict.fromkeys(imports))
    return header, "\n".join(bodies), final


def _rewrite(src: str, names: dict, modules_as: dict, final: dict, drop: set) -> str:
    """Replace NAME tokens (not attributes) per `names`, and `mod.attr` for sibling modules; drop lines in `drop`."""
    lines = src.splitlines(keepends=True)
    edits: dict[int, list] = {}  # line number → [(start col, end col, text)]
    toks = [t for t in tokenize.generate_tokens(io.StringIO(src).readline)
            if t.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT)]
    i = 0
    while i < len(toks):
        t = toks[i]
        prev = toks[i - 1] if i else None
        if t.type == tokenize.NAME and not (prev and prev.string == "."):
            if t.string in modules_as and i + 2 < len(toks) and toks[i + 1].string == ".":
                attr = toks[i + 2]
                new = final[modules_as[t.string]].get(attr.string, attr.string)
                edits.setdefault(t.start[0], []).append((t.start[1], attr.end[1], new))
                i += 3
                continue
            if t.string in names and names[t.string] != t.string:
                nxt = toks[i + 1] if i + 1 < len(toks) else None
                keyword_arg = nxt is not None and nxt.string == "=" and prev is not None and prev.string in ("(", ",")
                if not keyword_arg:
                    edits.setdefault(t.start[0], []).append((t.start[1], t.end[1], names[t.string]))
        i += 1
    out = []
    for n, line in enumerate(lines, 1):
        if n in drop:
            continue
        for a, b, text in sorted(edits.get(n, []), reverse=True):
            line = line[:a] + text + line[b:]
        if SELF_ALIAS.match(line):  # `acc = linear_core.acc` became `acc = acc`: the name is already global
            continue
        out.append(line)
    body = "".join(out).strip("\n") + "\n"
    while "\n\n\n\n" in body:
        body = body.replace("\n\n\n\n", "\n\n\n")
    return body
