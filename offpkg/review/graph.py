"""The dependency graph of a bundle, per target, from the lock and the wheels' own Requires-Dist.

Each wheel's ``Requires-Dist`` is evaluated with the target's markers (and the extras
asked of it), and an edge drawn to the wheel of that name the target carries. Edges
start at the top-level requirements; a carried wheel nothing reaches (a constraint, a
conda environment's pip package) becomes a root of its own, so nothing goes unseen.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ..target import Target


@dataclass
class Graph:
    """roots: {target index: [filename]}; edges: {filename: sorted filenames it requires} (union over targets)."""

    roots: dict[int, list[str]] = field(default_factory=dict)
    edges: dict[str, list[str]] = field(default_factory=dict)
    # For each root, the top-level requirement that asked for it ("" when nothing did).
    asked_by: dict[str, str] = field(default_factory=dict)

    def closure(self, filename: str) -> list[str]:
        """Every file ``filename`` pulls in, directly or not (itself excluded), in a stable order."""
        seen: list[str] = []
        todo = list(self.edges.get(filename, ()))
        while todo:
            f = todo.pop(0)
            if f == filename or f in seen:
                continue
            seen.append(f)
            todo += self.edges.get(f, ())
        return seen


def _req(text: str) -> Requirement | None:
    try:
        return Requirement(text)
    except InvalidRequirement:
        return None


def _applies(req: Requirement, target: Target, extras: Iterable[str]) -> bool:
    if req.marker is None:
        return True
    for extra in ("", *extras):
        env = dict(target.markers)
        env["extra"] = extra
        try:
            if req.marker.evaluate(env):  # type: ignore[arg-type]
                return True
        except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName):
            return False
    return False


def build_graph(targets: list[Target], files: list[tuple[str, str, tuple[int, ...]]],
                requires: dict[str, tuple[str, ...]], requirements: Iterable[str]) -> Graph:
    """``files``: (filename, project name, target indexes) of the requirement wheels;
    ``requires``: {filename: Requires-Dist}; ``requirements``: the bundle's top-level requirements."""
    graph = Graph()
    edges: dict[str, set[str]] = {}
    top = [r for r in (_req(t) for t in requirements) if r is not None]
    for ti, target in enumerate(targets):
        by_name = {canonicalize_name(n): f for f, n, ts in files if ti in ts}
        extras: dict[str, set[str]] = {}
        roots: list[str] = []
        todo: list[tuple[str, frozenset[str]]] = []
        for r in top:
            name = canonicalize_name(r.name)
            if name in by_name and _applies(r, target, ()):
                if by_name[name] not in roots:
                    roots.append(by_name[name])
                    graph.asked_by.setdefault(by_name[name], str(r))
                todo.append((name, frozenset(r.extras)))
        done: set[tuple[str, frozenset[str]]] = set()
        while todo:
            name, want = todo.pop()
            if (name, want) in done:
                continue
            done.add((name, want))
            extras.setdefault(name, set()).update(want)
            f = by_name[name]
            for text in requires.get(f, ()):
                dep = _req(text)
                if dep is None or not _applies(dep, target, sorted(extras[name])):
                    continue
                dn = canonicalize_name(dep.name)
                if dn in by_name and by_name[dn] != f:
                    edges.setdefault(f, set()).add(by_name[dn])
                    todo.append((dn, frozenset(dep.extras)))
        reached = set(roots) | {d for f in by_name.values() for d in edges.get(f, ())}
        roots += sorted(f for f in by_name.values() if f not in reached)
        graph.roots[ti] = roots
    graph.edges = {f: sorted(ds) for f, ds in sorted(edges.items())}
    return graph
