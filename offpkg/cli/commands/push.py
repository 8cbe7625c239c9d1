"""``offpkg push``, ``offpkg pull``: a bundle to and from an OCI registry (docs/fleet.md)."""

from __future__ import annotations

from pathlib import Path

import click

from .. import ui
from ..options import json_option

_PLAIN = click.option("--plain-http", is_flag=True,
                      help="Talk to the registry over plain HTTP (no TLS), e.g. one on loopback.")


@click.command()
@click.argument("bundle", type=click.Path(exists=True))
@click.argument("reference", metavar="oci://REGISTRY/REPO:TAG")
@_PLAIN
@json_option
def push(bundle: str, reference: str, plain_http: bool, as_json: bool) -> None:
    """Push a verified bundle to an OCI registry: one blob per file, only the blobs it lacks.

    Credentials: OFFPKG_REGISTRY_USERNAME/OFFPKG_REGISTRY_PASSWORD, else the Docker
    config (~/.docker/config.json, `docker login`). They are never printed.
    """
    ui.state.json = as_json
    from ...fleet.artifact import push as do_push
    from ...fleet.oci import Reference

    ref = Reference.parse(reference)
    with ui.spinner(f"pushing {bundle} to {ref}"):
        res = do_push(Path(bundle), ref, plain_http=plain_http)
    payload = {"ok": True, "reference": res.reference, "digest": res.digest, "blobs": res.blobs,
               "uploaded_blobs": res.uploaded_blobs, "uploaded_bytes": res.uploaded_bytes,
               "total_bytes": res.total_bytes, "manifest_uploaded": res.manifest_uploaded}
    if as_json:
        ui.emit_json("push", payload)
        return
    ui.result(f"pushed {ref} ({res.digest})")
    ui.result(f"  {res.uploaded_blobs} of {res.blobs} blobs uploaded, {ui.human_size(res.uploaded_bytes)} of "
              f"{ui.human_size(res.total_bytes)}; the registry had the rest")


@click.command()
@click.argument("reference", metavar="oci://REGISTRY/REPO:TAG")
@click.option("-o", "--output", required=True, type=click.Path(), help="The bundle directory to write.")
@click.option("--force", is_flag=True, help="Replace OUTPUT if it exists.")
@_PLAIN
@json_option
def pull(reference: str, output: str, force: bool, plain_http: bool, as_json: bool) -> None:
    """Pull a bundle from an OCI registry into a directory, every blob checked, the result verified.

    An interrupted pull resumes where it stopped when run again.
    """
    ui.state.json = as_json
    from ...fleet.artifact import pull as do_pull
    from ...fleet.oci import Reference

    ref = Reference.parse(reference)
    with ui.spinner(f"pulling {ref}"):
        res = do_pull(ref, Path(output), plain_http=plain_http, force=force)
    payload = {"ok": True, "reference": res.reference, "digest": res.digest, "output": str(res.output),
               "blobs": res.blobs, "downloaded_bytes": res.downloaded_bytes, "resumed": res.resumed}
    if as_json:
        ui.emit_json("pull", payload)
        return
    ui.result(f"pulled {ref} into {res.output} ({res.blobs} files, {ui.human_size(res.downloaded_bytes)} "
              f"downloaded{f', {res.resumed} resumed' if res.resumed else ''}); verified")


cli = push
