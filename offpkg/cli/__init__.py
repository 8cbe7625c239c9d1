"""The ``offpkg`` command line: a thin layer over the core.

Commands live one per module in ``offpkg/commands``; this module builds the
group, sets global output options and is the single place where exceptions
become exit codes (see ``offpkg.errors`` for the table).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from .. import __version__
from . import ui
from ..errors import OffpkgError
from ..redact import redact_text


# Top-level verbs: name -> (module under offpkg.cli.commands, attribute).
CORE = {"probe": ("probe", "probe"), "freeze": ("freeze", "freeze"), "lock": ("lock", "lock"),
        "bundle": ("bundle", "bundle"), "verify": ("verify", "verify"), "install": ("install", "install"),
        "inspect": ("inspect_", "inspect_"), "licenses": ("licenses", "licenses"), "report": ("report", "report"),
        "sign": ("sign", "sign")}
# Command groups (modules that export ``cli``) whose command name is not the module's name.
_GROUP_NAMES = {"index_": "index"}


class OffpkgGroup(click.Group):
    """The root group; it imports a command's module only when that command is asked for.

    Start-up matters (``offpkg verify`` on a bundle is a second or so): `offpkg verify`
    must not pay for importing requests, the resolver and the download code.
    """

    def _lazy(self) -> dict[str, tuple[str, str]]:
        table = dict(CORE)
        for mod in GROUPS:  # read at call time: tests may add to GROUPS
            table.setdefault(_GROUP_NAMES.get(mod, mod), (mod, "cli"))
        return table

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(self._lazy()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            where = self._lazy().get(cmd_name)
            if where is None:
                return None
            import importlib

            try:
                module = importlib.import_module(f"offpkg.cli.commands.{where[0]}")
            except ImportError as exc:  # pragma: no cover - an incomplete installation
                print(f"error: offpkg is not installed completely: {exc}", file=sys.stderr)
                sys.exit(10)
            self.add_command(getattr(module, where[1]), cmd_name)
        return self.commands.get(cmd_name)


@click.group(cls=OffpkgGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="offpkg")
@click.option("-q", "--quiet", is_flag=True, help="Only errors and results.")
@click.option("-v", "--verbose", count=True, help="More detail (repeat for debug logs).")
def cli(quiet: bool, verbose: int) -> None:
    """Carry Python and conda environments onto machines with no internet.

    On the connected machine: `offpkg bundle`. On the air-gapped one:
    `offpkg verify` and `offpkg install`. Every file is hash-pinned, the bundle
    is verified before installing, and `--verify` proves it installs offline.
    """
    ui.state.quiet = quiet
    ui.state.verbose = verbose
    if verbose > 1:
        logging.basicConfig(level=logging.DEBUG, format="%(name)s: %(message)s", stream=sys.stderr)


def _register() -> None:
    """Import and add every command now (``main`` adds them lazily, on first use)."""
    from .commands import core

    for cmd in core.COMMANDS:
        cli.add_command(cmd)
    # Command groups of the other capabilities, each in its own module.
    import importlib

    for name in GROUPS:
        cli.add_command(importlib.import_module(f"offpkg.cli.commands.{name}").cli)


GROUPS = ["cuda", "stack", "conda", "mirror", "config", "serve", "index_", "completion", "push", "pull", "publish"]


def _report(exc: OffpkgError) -> None:
    from rich.markup import escape

    ui.err.print(f"[bold red]error:[/] {escape(redact_text(exc.message))}")
    problems = getattr(exc, "problems", None)
    if problems:
        for p in problems:
            ui.err.print(f"  - {escape(redact_text(p))}")
    if exc.details:
        ui.err.print("[dim]" + escape(redact_text(exc.details)) + "[/]")
    if exc.hint:
        ui.err.print(f"[bold]hint:[/] {escape(redact_text(exc.hint))}")


def main(argv: list[str] | None = None) -> Any:
    """Entry point: run the CLI and map every error to its exit code."""
    try:
        rv = cli.main(args=argv, prog_name="offpkg", standalone_mode=False)
    except OffpkgError as exc:
        _report(exc)
        if ui.state.json:
            ui.emit_json("error", {"ok": False, "error": {"type": type(exc).__name__, "message": exc.message,
                                                          "hint": exc.hint, "exit_code": exc.exit_code,
                                                          "problems": getattr(exc, "problems", [])}})
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        ui.err.print("[bold red]error:[/] interrupted")
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        ui.err.print("[bold red]error:[/] interrupted")
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except OSError as exc:
        # Disk full, permission denied and the like: one clear line, never a traceback.
        import errno

        what = {errno.ENOSPC: "no space left on device", errno.EACCES: "permission denied",
                errno.EROFS: "read-only file system", errno.EDQUOT: "disk quota exceeded"}.get(exc.errno or 0)
        msg = f"{what or exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
        ui.err.print(f"[bold red]error:[/] {redact_text(msg)}")
        ui.err.print("[bold]hint:[/] free some space or fix the permissions, then run the command again")
        sys.exit(10)
    except Exception as exc:
        # A bug, not bad input: one line by default, the traceback with -vv for the report.
        if ui.state.verbose > 1:
            raise
        from rich.markup import escape

        ui.err.print(f"[bold red]error:[/] internal error: {escape(redact_text(f'{type(exc).__name__}: {exc}'))}")
        ui.err.print("[bold]hint:[/] this is a bug in offpkg; run the command again with -vv to see the traceback, "
                     "and report it")
        sys.exit(70)
    if isinstance(rv, int) and rv:
        sys.exit(rv)
    return rv
