"""Click options shared by several commands, declared once."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def _compose(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    def apply(f: F) -> F:
        for d in reversed(decorators):
            f = d(f)
        return f

    return apply


def interpreter(value: str | None) -> Path | None:
    """A --python value as a Path that still names the same program.

    ``Path("./py")`` is ``py``, which a subprocess would look up on PATH: a value
    with a slash is made absolute, a bare name (``python3.11``) is left to PATH.
    """
    if not value:
        return None
    return Path(value).absolute() if "/" in value or os.sep in value else Path(value)


json_option = click.option("--json", "as_json", is_flag=True, help="Print a machine-readable JSON result on stdout.")

target_options = _compose(
    click.option("--target", "target_files", type=click.Path(dir_okay=False), multiple=True,
                 help="Target description written by `offpkg probe` on the target host (repeatable where "
                      "a command supports several targets)."),
    click.option("--python-version", default=None, metavar="X.Y",
                 help="Target Python version (with --platform), instead of --target."),
    click.option("--platform", "platforms", multiple=True, metavar="TAG",
                 help="Target platform tag, e.g. manylinux_2_28_x86_64 (expands to every tag that host accepts). Repeatable."),
)

index_options = _compose(
    click.option("--index-url", "-i", default=None, metavar="URL",
                 help="Base URL of the package index (PEP 503/691). Default: the configured mirror, else PyPI."),
    click.option("--extra-index-url", multiple=True, metavar="URL", help="Extra index to consult. Repeatable."),
    click.option("--find-links", "-f", multiple=True, metavar="DIR", help="Local folder of wheels/sdists. Repeatable."),
)

backend_option = click.option("--backend", type=click.Choice(["auto", "uv", "pip"]), default=None,
                              help="Resolver/installer backend (default: uv when it runs, else pip).")

force_option = click.option("--force", is_flag=True, help="Overwrite an existing output.")

cache_option = click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
                            help="Content-addressed download cache (default: the user cache dir).")

requirement_options = _compose(
    click.argument("reqs", nargs=-1),
    click.option("-r", "--requirement", "req_files", multiple=True, type=click.Path(dir_okay=False),
                 help="Requirements file. Repeatable."),
    click.option("-c", "--constraint", "constraint_files", multiple=True, type=click.Path(dir_okay=False),
                 help="Constraints file. Repeatable."),
)

trust_option = click.option(
    "--trust", "trust", type=click.Path(dir_okay=False), default=None, metavar="ALLOWED_SIGNERS",
    help="OpenSSH allowed_signers file: refuse the bundle unless a key listed there signed it "
         "(default: OFFPKG_TRUST or the `trust` config key).")
