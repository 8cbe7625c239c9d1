"""``offpkg completion``: the shell completion script, from click's own completion machinery."""

from __future__ import annotations

import os

import click
from click.shell_completion import get_completion_class

from .. import ui
from ...errors import UsageError
from ..options import json_option

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_OFFPKG_COMPLETE"

_INSTALL = {
    "bash": 'echo \'eval "$(offpkg completion bash)"\' >> ~/.bashrc',
    "zsh": 'echo \'eval "$(offpkg completion zsh)"\' >> ~/.zshrc',
    "fish": "offpkg completion fish > ~/.config/fish/completions/offpkg.fish",
}


def completion_script(shell: str) -> str:
    """The completion script for ``shell``; it calls back `offpkg` with _OFFPKG_COMPLETE set."""
    from .. import _register, cli

    if not cli.commands:  # the root group is filled by cli.main(); make sure it is when called directly
        _register()
    cls = get_completion_class(shell)
    if cls is None:
        raise UsageError(f"no completion for shell {shell!r}; choose one of {', '.join(SHELLS)}")
    return cls(cli, {}, "offpkg", COMPLETE_VAR).source()


@click.command()
@click.argument("shell", required=False, type=click.Choice(SHELLS))
@json_option
def completion(shell: str | None, as_json: bool) -> None:
    """Print the shell completion script for bash, zsh or fish (default: from $SHELL).

    \b
    bash:  eval "$(offpkg completion bash)"   (add it to ~/.bashrc)
    zsh:   eval "$(offpkg completion zsh)"    (add it to ~/.zshrc)
    fish:  offpkg completion fish > ~/.config/fish/completions/offpkg.fish
    """
    ui.state.json = as_json
    if shell is None:
        shell = os.path.basename(os.environ.get("SHELL", ""))
        if shell not in SHELLS:
            raise UsageError("cannot tell which shell this is; give it: offpkg completion bash|zsh|fish")
    script = completion_script(shell)
    if as_json:
        ui.emit_json("completion", {"ok": True, "shell": shell, "script": script, "install": _INSTALL[shell]})
        return
    click.echo(script, nl=not script.endswith("\n"))


cli = completion
