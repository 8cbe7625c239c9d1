"""The one registry of commands: one table, each command imported only when it is asked for.

Start-up matters (``offpkg verify`` of a bundle takes a second or so; importing
requests, the resolver and the download code would add to every run), so the
table names modules, and :class:`offpkg.cli.OffpkgGroup` imports a module on first use.

To add a command: write ``offpkg/cli/commands/NAME.py`` and add one line here.
"""

from __future__ import annotations

# command name -> (module under offpkg.cli.commands, attribute: a click command or group)
COMMANDS: dict[str, tuple[str, str]] = {
    # the core round trip
    "probe": ("probe", "probe"),
    "freeze": ("freeze", "freeze"),
    "lock": ("lock", "lock"),
    "bundle": ("bundle", "bundle"),
    "verify": ("verify", "verify"),
    "install": ("install", "install"),
    "inspect": ("inspect_", "inspect_"),
    # review before the gap (offpkg.review)
    "licenses": ("licenses", "licenses"),
    "report": ("report", "report"),
    "sign": ("sign", "sign"),
    # command groups and the other capabilities
    "cuda": ("cuda", "cli"),
    "stack": ("stack", "cli"),
    "conda": ("conda", "cli"),
    "mirror": ("mirror", "cli"),
    "config": ("config", "cli"),
    "serve": ("serve", "cli"),
    "index": ("index_", "cli"),
    "completion": ("completion", "cli"),
    "push": ("push", "cli"),
    "pull": ("pull", "cli"),
    "publish": ("publish", "cli"),
    "diff": ("diff", "cli"),
    "rollback": ("rollback", "cli"),
}


def load(name: str):  # noqa: ANN201 - a click.Command
    """Import the module of command ``name`` and return its click command (KeyError if unknown)."""
    import importlib

    module, attr = COMMANDS[name]
    return getattr(importlib.import_module(f"{__name__}.{module}"), attr)
