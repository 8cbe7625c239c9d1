"""``offpkg sign BUNDLE --key KEY``: add an OpenSSH signature of the bundle's offpkg.json."""

from __future__ import annotations

from pathlib import Path

import click

from .. import ui
from ..options import json_option


@click.command("sign")
@click.argument("bundle", type=click.Path(exists=False))
@click.option("--key", "keys", required=True, multiple=True, type=click.Path(dir_okay=False), metavar="KEY",
              help="SSH private key, or a .pub whose private half ssh-agent holds. Repeatable.")
@json_option
def sign(bundle: str, keys: tuple[str, ...], as_json: bool) -> None:
    """Verify a bundle, then add a signature of its offpkg.json to offpkg.json.sig.

    A builder signs with `offpkg bundle --sign`; a reviewer adds theirs with this
    command. Directory bundles get the file in place; .tar, .tar.zst and .sh
    bundles are rewritten with it (same deterministic member order and mtime).
    """
    ui.state.json = as_json
    from ...trust import sign_bundle

    results = []
    for key in keys:
        with ui.spinner(f"signing {bundle} with {key}"):
            results.append(sign_bundle(Path(bundle), Path(key)))
    if as_json:
        ui.emit_json("sign", {"ok": True, "bundle": bundle, "signed": [r.to_json() for r in results],
                              "signatures": results[-1].signatures})
        return
    for key, r in zip(keys, results):
        if r.added:
            ui.result(f"signed {bundle} with {r.key} ({key}); {r.signatures} signature(s) in offpkg.json.sig")
        else:
            ui.result(f"{bundle} is already signed by {r.key} ({key}); nothing changed")
