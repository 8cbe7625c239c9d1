"""The ``offpkg`` command line: a thin layer over the core.

Commands live one per module in ``offpkg/cli/commands`` (one table there); this module builds the
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
from ..errors import EnvironmentProblem, InputError, InternalError, InterruptedByUser, OffpkgError, UsageError, from_oserror
from ..redact import redact_text

log = logging.getLogger("offpkg")


class OffpkgGroup(click.Group):
    """The root group; it imports a command's module only when that command is asked for.

    Start-up matters (``offpkg verify`` on a bundle is a second or so): `offpkg verify`
    must not pay for importing requests, the resolver and the download code. The
    commands are listed once, in ``offpkg.cli.commands.COMMANDS``.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        from .commands import COMMANDS

        return sorted(set(self.commands) | set(COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            from .commands import COMMANDS, load

            if cmd_name not in COMMANDS:
                return None
            try:
                command = load(cmd_name)
            except ImportError as exc:  # pragma: no cover - an incomplete installation
                raise EnvironmentProblem(f"offpkg is not installed completely: {exc}",
                                         hint="reinstall offpkg with its dependencies") from None
            self.add_command(command, cmd_name)
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
    from .commands import COMMANDS, load

    for name in COMMANDS:
        if name not in cli.commands:
            cli.add_command(load(name), name)


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


_json_requested = False


def wants_json(argv: list[str] | None) -> bool:
    """Whether ``--json`` was given, known before click parses (a usage error must answer in JSON too)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--" in args:
        args = args[:args.index("--")]
    return "--json" in args


def error_document(exc: OffpkgError) -> dict[str, Any]:
    """The JSON error document (docs/json.md): the same keys for every failure."""
    return {"ok": False, "error": {"type": type(exc).__name__, "message": exc.message, "hint": exc.hint,
                                   "exit_code": exc.exit_code, "problems": list(getattr(exc, "problems", []))}}


def _fail(exc: OffpkgError, *, shown: bool = False) -> None:
    """Report ``exc`` (stderr, and the JSON document on stdout under --json) and exit with its code."""
    if not shown:
        _report(exc)
    # --json anywhere in argv asks for the document, even where click read it as another option's value.
    if (ui.state.json or _json_requested) and not ui.state.emitted:
        ui.emit_json("error", error_document(exc))
    sys.exit(exc.exit_code)


def _usage(exc: click.ClickException) -> OffpkgError:
    """click's own errors (bad option, missing argument, unreadable click.File) as offpkg errors."""
    err: OffpkgError = UsageError(exc.format_message())
    err.exit_code = exc.exit_code  # click.FileError is 1, usage errors 2: keep click's codes
    return err


def main(argv: list[str] | None = None) -> Any:
    """Entry point: run the CLI and map every error to its exit code (the single error boundary).

    Every failure prints one ``error:`` line (and a ``hint:``) on stderr and, with
    ``--json``, one JSON error document on stdout; tracebacks only with ``-vv``.
    """
    global _json_requested
    _json_requested = ui.state.json = wants_json(argv)
    ui.state.emitted = False
    try:
        rv = cli.main(args=argv, prog_name="offpkg", standalone_mode=False)
    except OffpkgError as exc:
        _fail(exc)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()  # click's usage text and "Error: ..." on stderr, as before
        _fail(_usage(exc), shown=True)
    except (click.exceptions.Abort, KeyboardInterrupt):
        _fail(InterruptedByUser("interrupted", hint="nothing half-written was kept; run the command again"))
    except BrokenPipeError:
        sys.exit(0)  # `offpkg ... | head`: the reader has all it wanted
    except OSError as exc:
        # Disk full, a missing folder, a refused connection: one honest line by errno, never a traceback.
        if ui.state.verbose > 1:
            log.debug("OSError at the boundary", exc_info=True)
        _fail(from_oserror(exc))
    except RecursionError:
        # Deeply nested input (a path 1,500 folders deep, a manifest nested as deep): bad input, not a bug.
        _fail(InputError("the input is nested too deeply to process (a path or document hundreds of levels deep)",
                         hint="this input was not made by offpkg; check where it came from"))
    except Exception as exc:
        # A bug, not bad input: one line by default, the traceback with -vv for the report.
        if ui.state.verbose > 1:
            raise
        _fail(InternalError(f"internal error: {type(exc).__name__}: {exc}",
                            hint="this is a bug in offpkg; run the command again with -vv to see the traceback, "
                                 "and report it"))
    if isinstance(rv, int) and rv:
        sys.exit(rv)
    return rv
