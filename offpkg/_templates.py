"""Where the templates are: the ``offpkg.templates`` package of an installed offpkg.

The repository keeps them at the top level (``templates/``), mapped into the
wheel as ``offpkg.templates``. When offpkg runs from a source checkout without
that mapping (``python -m offpkg`` in the repository root, next to a normal
install), the package does not exist and the checkout's folder is used instead.
"""

from __future__ import annotations

from importlib import resources
from importlib.abc import Traversable
from pathlib import Path


def templates() -> Traversable | Path:
    try:
        return resources.files("offpkg.templates")
    except ModuleNotFoundError:
        checkout = Path(__file__).resolve().parent.parent / "templates"
        if checkout.is_dir():
            return checkout
        raise


def read_template(name: str) -> str:
    return (templates() / name).read_text(encoding="utf-8")
