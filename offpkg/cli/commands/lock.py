from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import click

from typing import TYPE_CHECKING

from .. import ui
from ..options import requirement_options, backend_option, index_options, json_option, target_options

if TYPE_CHECKING:
    from ...target import Target


@click.command()
@requirement_options
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here instead of stdout.")
@target_options
@index_options
@backend_option
@json_option
def lock(reqs: tuple[str, ...], req_files: tuple[str, ...], constraint_files: tuple[str, ...], output: str | None,
         target_files: tuple[str, ...], python_version: str | None, platforms: tuple[str, ...], index_url: str | None,
         extra_index_url: tuple[str, ...], find_links: tuple[str, ...], backend: str | None, as_json: bool) -> None:
    """Resolve for the target and print hash-pinned requirements, without downloading.

    Each pin carries the sha256 (from the index) of the one file the target
    would install; `offpkg bundle` does the same and also fetches and proves it.
    """
    ui.state.json = as_json
    # Imported here: --help and the other commands need not load the resolver and requests.
    from ...backends import get_backend
    from ...fsutil import write_text_atomic
    from ...net.index import IndexClient
    from ...resolve import collect_requirements, lock as do_lock
    from ._common import settings, sources_from_options, targets_from_options

    cfg = settings()
    targets = targets_from_options(target_files, python_version, platforms, cfg)
    if len(targets) > 1:
        raise click.UsageError("lock takes one target; use `offpkg bundle` for multi-target bundles")
    target: Target = targets[0]
    sources = sources_from_options(index_url, extra_index_url, find_links, cfg=cfg)
    requirements, constraints = collect_requirements(list(reqs), [Path(f) for f in req_files],
                                                     [Path(f) for f in constraint_files])
    client = IndexClient(list(sources.index_urls), list(sources.find_links))
    with tempfile.TemporaryDirectory(prefix="offpkg-lock-") as wd, ui.spinner("resolving"):
        sels = do_lock(requirements, constraints, target, sources, get_backend(backend or cfg.get("backend")),
                       client, Path(wd))
    lines = [f"# offpkg lock for {target.describe()}"]
    entries = []
    for s in sorted(sels, key=lambda s: s.pin.name):
        note = "  # sdist: `offpkg bundle` builds it into a wheel" if s.needs_build else ""
        digest = s.file.sha256 or ""
        lines.append(f"{s.pin.name}=={s.pin.version} \\\n    --hash=sha256:{digest}{note}" if digest
                     else f"{s.pin.name}=={s.pin.version}  # the index publishes no hash for {s.file.filename}")
        entries.append({"name": s.pin.name, "version": s.pin.version, "filename": s.file.filename,
                        "sha256": s.file.sha256, "sdist": s.needs_build})
    text = "\n".join(lines) + "\n"
    if output:
        write_text_atomic(Path(output), text)
    if as_json:
        ui.emit_json("lock", {"ok": True, "target": target.id, "packages": entries, "output": output})
    elif not output:
        sys.stdout.write(text)
    else:
        ui.info(f"wrote {len(entries)} pins to {output}")
