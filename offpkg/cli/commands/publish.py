"""``offpkg publish``: a bundle's wheels onto a PyPI-compatible server (docs/fleet.md)."""

from __future__ import annotations

from pathlib import Path

import click

from .. import ui
from ..options import json_option


@click.command()
@click.argument("bundle", type=click.Path(exists=True))
@click.option("--to", "url", required=True, metavar="URL",
              help="The server's upload URL, e.g. http://pypi.internal:8080/ (pypiserver) or .../+simple/ (devpi).")
@click.option("--simple-url", default=None, metavar="URL",
              help="Where the server's simple index is, when it is not URL/simple/.")
@json_option
def publish(bundle: str, url: str, simple_url: str | None, as_json: bool) -> None:
    """Upload the bundle's wheels to a PyPI-compatible server (twine); files already there are skipped.

    Credentials: OFFPKG_PUBLISH_USERNAME/OFFPKG_PUBLISH_PASSWORD (or TWINE_USERNAME/TWINE_PASSWORD).
    Nodes then run: pip install --index-url URL/simple --require-hashes -r requirements.txt
    """
    ui.state.json = as_json
    from ...fleet.publish import publish as do_publish

    with ui.spinner(f"publishing {bundle} to {url}"):
        res = do_publish(Path(bundle), url, simple_url=simple_url)
    payload = {"ok": True, "url": url, "uploaded": res.uploaded, "skipped": res.skipped,
               "uploaded_bytes": res.uploaded_bytes}
    if as_json:
        ui.emit_json("publish", payload)
        return
    ui.result(f"published to {url}: {len(res.uploaded)} uploaded ({ui.human_size(res.uploaded_bytes)}), "
              f"{len(res.skipped)} already there")
    ui.result(f"  nodes: pip install --index-url {(simple_url or url.rstrip('/') + '/simple/')} "
              "--require-hashes -r requirements.txt")


cli = publish
