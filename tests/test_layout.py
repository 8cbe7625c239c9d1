"""The house rules of docs/architecture.md that a machine can check: no import cycles, every
module importable on its own, modules of a readable size, HTTP clients only in offpkg.net,
and the core never printing."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "offpkg"
# "~500 lines": a module may run a little over while it is being split; these are known to be
# over and are being split by their owners (keep this list short and shrinking).
MAX_LINES = 550
OVERSIZED: set[str] = set()  # bundle.py was split (lockfiles.py, bundletools.py)
HTTP_CLIENTS = {"requests", "urllib3", "http.client", "urllib.request", "httpx", "aiohttp"}
# What makes a request or a session of its own (offpkg.net.make_session is the one session factory).
REQUEST_MAKERS = {"get", "post", "put", "patch", "delete", "head", "options", "request", "Session", "session"}
# Standalone scripts that also run outside offpkg (``offpkg probe --script``): they print as scripts do.
SCRIPTS = {"offpkg._probe"}


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted(ROOT.rglob("*.py")):
        rel = p.relative_to(ROOT.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = p
    return out


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or \
        (isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _top_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports that run when the module is imported (not in functions, not under TYPE_CHECKING)."""
    found: list[ast.Import | ast.ImportFrom] = []

    def walk(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found.append(node)
            elif isinstance(node, ast.If) and not _is_type_checking(node):
                walk(node.body)
                walk(node.orelse)
            elif isinstance(node, ast.Try):
                walk(node.body)
                for h in node.handlers:
                    walk(h.body)
                walk(node.orelse)
                walk(node.finalbody)

    walk(tree.body)
    return found


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if path.name != "__init__.py":
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        for node in _top_level_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                target = _resolve(mod, path, node)
                # `from . import x`: x is a submodule or a name of the package
                targets = [f"{target}.{a.name}" if f"{target}.{a.name}" in mods else target for a in node.names]
            for t in targets:
                while t and t not in mods and "." in t:
                    t = t.rsplit(".", 1)[0]
                if t in mods and t != mod and t.startswith("offpkg"):
                    graph[mod].add(t)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _is_package_parent(a: str, b: str) -> bool:
    return b.startswith(a + ".") or a.startswith(b + ".")


def test_no_import_cycles() -> None:
    graph = _graph()
    # A package's __init__ re-exporting its submodules is not a cycle: Python always imports the
    # package before its submodules. Only edges between different modules count.
    trimmed = {m: {t for t in ts if not _is_package_parent(m, t)} for m, ts in graph.items()}
    assert _cycles(trimmed) == []


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_module_imports_first_in_a_fresh_interpreter() -> None:
    """Each module imported first (offpkg's modules dropped before each): an import-order cycle fails here."""
    code = (
        "import importlib, json, sys\n"
        "bad = {}\n"
        f"for m in {sorted(m for m in _modules() if not m.endswith('__main__'))!r}:\n"
        "    for k in [k for k in sys.modules if k == 'offpkg' or k.startswith('offpkg.')]:\n"
        "        del sys.modules[k]\n"
        "    try:\n"
        "        importlib.import_module(m)\n"
        "    except Exception as e:\n"
        "        bad[m] = f'{type(e).__name__}: {e}'\n"
        "print(json.dumps(bad))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=ROOT.parent)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {}


@pytest.mark.parametrize("package", ["net", "conda", "mirrors", "archive", "cli", "backends", "fleet", "gpu", ""])
def test_modules_are_readable_in_one_sitting(package: str) -> None:
    base = ROOT / package if package else ROOT
    paths = sorted(base.rglob("*.py")) if package else sorted(base.glob("*.py"))
    over = {p.relative_to(ROOT).as_posix(): n for p in paths
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert set(over) <= OVERSIZED, over


def test_http_clients_only_in_the_network_layer() -> None:
    """HTTP is made through offpkg.net: no other module opens a session or sends a request with an HTTP
    library of its own (naming ``requests.RequestException`` in an ``except`` is fine)."""
    offenders = []
    for mod, path in _modules().items():
        if mod == "offpkg.net" or mod.startswith("offpkg.net."):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                offenders += [f"{mod}:{node.lineno} import {a.name}" for a in node.names
                              if a.name in HTTP_CLIENTS - {"requests"} and a.name != "urllib3.exceptions"]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = {a.name for a in node.names}
                if node.module in HTTP_CLIENTS - {"requests", "urllib3"} or \
                        (node.module == "requests" and names & REQUEST_MAKERS) or \
                        (node.module == "urllib3" and names - {"exceptions"}):
                    offenders.append(f"{mod}:{node.lineno} from {node.module} import {', '.join(sorted(names))}")
            elif isinstance(node, ast.Attribute) and node.attr in REQUEST_MAKERS \
                    and isinstance(node.value, ast.Name) and node.value.id == "requests":
                offenders.append(f"{mod}:{node.lineno} requests.{node.attr}")
    assert offenders == []


def test_the_core_never_prints() -> None:
    """print(), sys.stdout/stderr writes and click.echo belong to offpkg.cli (and generated scripts)."""
    offenders = []
    for mod, path in _modules().items():
        if mod == "offpkg.cli" or mod.startswith("offpkg.cli.") or mod in SCRIPTS:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                f = node.func
                if isinstance(f, ast.Name) and f.id == "print":
                    offenders.append(f"{mod}:{node.lineno} print()")
                elif isinstance(f, ast.Attribute) and f.attr == "echo":
                    offenders.append(f"{mod}:{node.lineno} echo()")
                elif isinstance(f, ast.Attribute) and f.attr == "write" and isinstance(f.value, ast.Attribute) \
                        and f.value.attr in ("stdout", "stderr"):
                    offenders.append(f"{mod}:{node.lineno} sys.{f.value.attr}.write()")
    assert offenders == []


def test_no_package_name_shadows_its_submodule() -> None:
    """``pkg.x`` must be the module ``pkg/x.py`` once imported: a function of the same name in
    ``pkg/__init__`` would make ``import pkg.x as m`` and ``from pkg import x`` return the function."""
    import importlib
    import inspect

    shadowed = []
    for mod, path in _modules().items():
        if path.name != "__init__.py":
            continue
        pkg = importlib.import_module(mod)
        for sub in sorted(path.parent.glob("*.py")):
            name = sub.stem
            if name == "__init__":
                continue
            importlib.import_module(f"{mod}.{name}")
            if not inspect.ismodule(getattr(pkg, name)):
                shadowed.append(f"{mod}.{name}")
    assert shadowed == []


def test_tomllib_only_through_the_compat_shim() -> None:
    """tomllib is 3.11+: every module takes it from offpkg._compat (tomli on 3.9/3.10)."""
    root = Path(__file__).resolve().parent.parent / "offpkg"
    bad = [str(p.relative_to(root)) for p in root.rglob("*.py") if p.name != "_compat.py"
           and any(line.strip() in ("import tomllib",) or line.strip().startswith("from tomllib")
                   for line in p.read_text(encoding="utf-8").splitlines())]
    assert bad == [], bad
