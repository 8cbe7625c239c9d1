"""Built-in stacks: named package sets with a smoke test, defined in ``templates/stacks/*.toml``.

A stack file holds ``name``, ``description``, ``requirements`` (PEP 508 strings),
``torch`` (true when the stack needs CUDA planning, see ``offpkg.gpu.cuda``),
``smoke`` (the smoke-test script beside it, run inside the installed
environment as ``python SCRIPT --expect-cuda X.Y|none``) and ``notes``.
They ship as package data of ``offpkg.templates`` (the repository's templates/).
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.requirements import InvalidRequirement, Requirement

from ._compat import tomllib
from .errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from importlib.resources.abc import Traversable


_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")


@dataclass(frozen=True)
class Stack:
    """A built-in stack."""

    name: str
    description: str
    requirements: tuple[str, ...]
    needs_cuda: bool  # holds torch-family packages: plan the CUDA variant first
    smoke_name: str  # file name of the smoke script, beside the stack file
    notes: str = ""

    @property
    def smoke_script(self) -> Traversable:
        """The smoke script as a package resource (``.read_text()``; a real file in a normal install)."""
        return _stacks_dir() / self.smoke_name

    def smoke_resource(self) -> Traversable:
        return self.smoke_script

    def smoke_text(self) -> str:
        """The smoke script's source."""
        return self.smoke_resource().read_text(encoding="utf-8")

    def write_smoke(self, directory: str | os.PathLike[str]) -> Path:
        """Write the smoke script into ``directory`` (atomically) and return its path."""
        dest = Path(directory) / self.smoke_name
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{self.smoke_name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(self.smoke_text())
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return dest

    def smoke_argv(self, python: str, script: str | os.PathLike[str], expect_cuda: str | None) -> list[str]:
        """The argv that runs the smoke test: ``[python, script, "--expect-cuda", "13.0" | "none"]``."""
        return [python, os.fspath(script), "--expect-cuda", expect_cuda or "none"]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "requirements": list(self.requirements),
                "needs_cuda": self.needs_cuda, "smoke": self.smoke_name, "notes": self.notes}


def _stacks_dir() -> Traversable:
    from ._templates import templates

    return templates() / "stacks"


def _parse(text: str, where: str) -> Stack:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"stack file {where} is not valid TOML: {exc}") from None

    def get(key: str, kind: type, default: Any = ...) -> Any:
        if key not in data:
            if default is ...:
                raise InputError(f"stack file {where}: `{key}` is missing")
            return default
        value = data[key]
        if not isinstance(value, kind):
            raise InputError(f"stack file {where}: `{key}` must be a {kind.__name__}")
        return value

    name = get("name", str)
    if not _NAME.fullmatch(name):
        raise InputError(f"stack file {where}: name {name!r} must be lowercase letters, digits and dashes")
    reqs = get("requirements", list)
    for r in reqs:
        try:
            Requirement(r)
        except (InvalidRequirement, TypeError):
            raise InputError(f"stack file {where}: requirement {r!r} is not a PEP 508 requirement") from None
    smoke = get("smoke", str)
    if "/" in smoke or "\\" in smoke or not smoke.endswith(".py"):
        raise InputError(f"stack file {where}: smoke {smoke!r} must be a .py file name beside the stack file")
    return Stack(name=name, description=get("description", str).strip(), requirements=tuple(reqs),
                 needs_cuda=get("torch", bool, False), smoke_name=smoke, notes=get("notes", str, "").strip())


def list_stacks() -> list[Stack]:
    """Every built-in stack, sorted by name."""
    out = []
    for entry in _stacks_dir().iterdir():
        if entry.name.endswith(".toml"):
            stack = _parse(entry.read_text(encoding="utf-8"), f"stacks/{entry.name}")
            if stack.name + ".toml" != entry.name:
                raise InputError(f"stack file stacks/{entry.name} names itself {stack.name!r}")
            if not (_stacks_dir() / stack.smoke_name).is_file():
                raise InputError(f"stack {stack.name}: its smoke script {stack.smoke_name} is missing",
                                 hint="reinstall offpkg")
            out.append(stack)
    return sorted(out, key=lambda s: s.name)


def get_stack(name: str) -> Stack:
    """The built-in stack called ``name``; InputError listing the known ones otherwise."""
    stacks = list_stacks()
    for s in stacks:
        if s.name == name.strip().lower():
            return s
    raise InputError(f"there is no built-in stack called {name!r}",
                     hint="known stacks: " + ", ".join(s.name for s in stacks) + " (see `offpkg stack list`)")
