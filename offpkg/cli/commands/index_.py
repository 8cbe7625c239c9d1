"""``offpkg index``: write a static PEP 503 index into a bundle, for any static web server."""

from __future__ import annotations

from pathlib import Path

import click

from .. import ui
from ..options import force_option, json_option


@click.command("index")
@click.argument("bundle", type=click.Path(exists=False))
@click.option("-o", "--output", default=None, type=click.Path(),
              help="Write a new bundle (directory, .tar, .tar.zst or .sh) with the index instead of changing BUNDLE "
                   "in place; required when BUNDLE is an archive.")
@force_option
@json_option
def index(bundle: str, output: str | None, force: bool, as_json: bool) -> None:
    """Write simple/ (PEP 503 HTML + PEP 691 JSON) into a bundle so any static web server can serve it.

    The new files are listed and hashed in offpkg.json and SHA256SUMS, so the bundle
    still verifies. Serve the bundle's root, then:
    `pip install --index-url http://HOST/simple NAME`.
    """
    ui.state.json = as_json
    from ...fleet.simpleindex import index_bundle

    with ui.spinner(f"indexing {bundle}"):
        res = index_bundle(Path(bundle), Path(output) if output else None, force)
    payload = {"ok": True, "bundle": str(res.bundle), "projects": res.projects, "files": res.written,
               "index": "simple/"}
    if as_json:
        ui.emit_json("index", payload)
        return
    ui.result(f"ok: wrote simple/ into {res.bundle} ({res.projects} projects, {len(res.written)} files); "
              "offpkg.json and SHA256SUMS updated")
    root = res.bundle if res.bundle.is_dir() else "the unpacked bundle"
    ui.result(f"  serve {root} with any static web server (e.g. python3 -m http.server 8080), "
              "then: pip install --index-url http://HOST:8080/simple NAME")


cli = index
