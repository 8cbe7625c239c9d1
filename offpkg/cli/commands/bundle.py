from __future__ import annotations

import contextlib
import time
from pathlib import Path

import click

from .. import ui
from ..options import requirement_options, backend_option, cache_option, force_option, index_options, json_option, target_options


def _smoke_hook(stack: str | None):  # noqa: ANN202 - returns the verify_hook build_bundle expects
    """The smoke test run on the finished staging directory (bundle --verify), each target with its python.

    It raises when a check fails, so build_bundle removes the staging directory: a
    bundle that fails --verify is never written at OUT (docs/reliability.md). A target
    with no matching interpreter here is reported unverified, not failed.
    """
    from ...smoke import prove_targets, require_verified

    def hook(stage: Path, manifest):  # noqa: ANN001 - a Manifest
        with ui.spinner("smoke test: installing offline into a throwaway venv (each target with its own python)"):
            return require_verified(prove_targets(stage, manifest, stack=stack))

    return hook


def _add_direct(opts, refs, stack_: contextlib.ExitStack) -> None:  # noqa: ANN001 - BundleOptions, DirectRefs
    """Build the direct references (URLs, VCS, paths) into wheels and pin them (offpkg.directref)."""
    import dataclasses
    import tempfile

    from ...directref import prepare

    work = Path(stack_.enter_context(tempfile.TemporaryDirectory(prefix="offpkg-direct-")))
    with ui.spinner(f"building {len(refs)} direct reference(s) into wheels"):
        prep = prepare(refs, opts.backend, opts.sources, opts.cache, work, timeout=opts.fetch_policy.timeout)
    opts.requirements = [*opts.requirements, *prep.requirements]
    opts.sources = dataclasses.replace(opts.sources, find_links=(*opts.sources.find_links, str(prep.find_links)))
    opts.extra["built_from"] = prep.records
    opts.extra["direct_files"] = prep.files


@click.command()
@requirement_options
@click.option("-o", "--output", required=True, type=click.Path(),
              help="Bundle path: a directory, or one file ending in .tar, .tar.zst or .sh (self-extracting).")
@target_options
@index_options
@backend_option
@cache_option
@force_option
@click.option("--stack", default=None, help="A built-in stack (see `offpkg stack list`), e.g. gpu-ml.")
@click.option("--cuda", default=None, metavar="auto|cpu|cuXYZ|rocmX.Y|xpu",
              help="Torch build: auto (from the target's GPU facts: NVIDIA, AMD or none), cpu, or a variant such as "
                   "cu126, rocm6.3 or xpu. An explicit build is never swapped for PyPI's.")
@click.option("--torch", "torch_version", default=None, metavar="VERSION", help="Torch release for --cuda planning.")
@click.option("--torch-index", "torch_index", default=None, metavar="URL", envvar="OFFPKG_TORCH_INDEX",
              help="Base of the PyTorch wheel index or a mirror of it (variants below it: URL/cu126 ...).")
@click.option("--tools/--no-tools", default=True, show_default=True,
              help="Carry pip and uv wheels in tools/ for the offline host.")
@click.option("--verify", "smoke", is_flag=True,
              help="Prove it: install into a throwaway venv with no network and run the smoke test.")
@click.option("--conda-env", default=None, metavar="NAME|PREFIX", help="Pack this conda environment into the bundle.")
@click.option("--pip-as-wheels", is_flag=True, help="With --conda-env: carry pip-installed packages as locked wheels.")
@click.option("--deny-license", "deny_licenses", multiple=True, metavar="SPDX",
              help="Refuse the bundle (exit 11) if a package's license is this SPDX id or glob (GPL-*), or "
                   "'unknown'; repeatable; adds to the deny-licenses config key.")
@click.option("--sign", "sign_keys", multiple=True, type=click.Path(dir_okay=False), metavar="KEY",
              help="Sign offpkg.json with this SSH key (a private key, or a .pub whose key ssh-agent holds): "
                   "writes offpkg.json.sig. Repeatable.")
@click.option("--refresh", is_flag=True,
              help="Resolve afresh even when nothing changed since the last run (its pins are otherwise reused).")
@click.option("--verify-cache", "verify_cache", is_flag=True,
              help="Re-hash every cached file used, instead of trusting the stamp taken when it was stored.")
@click.option("--base", "base", default=None, type=click.Path(), metavar="OLD",
              help="Write a delta: only the files OLD lacks (OLD: a bundle, its offpkg.json, or a venv's receipt).")
@json_option
def bundle(reqs: tuple[str, ...], req_files: tuple[str, ...], constraint_files: tuple[str, ...], output: str,
           target_files: tuple[str, ...], python_version: str | None, platforms: tuple[str, ...],
           index_url: str | None, extra_index_url: tuple[str, ...], find_links: tuple[str, ...],
           backend: str | None, cache_dir: str | None, force: bool, stack: str | None, cuda: str | None,
           torch_version: str | None, torch_index: str | None, tools: bool, smoke: bool, conda_env: str | None, pip_as_wheels: bool,
           deny_licenses: tuple[str, ...], sign_keys: tuple[str, ...], refresh: bool, verify_cache: bool,
           base: str | None, as_json: bool) -> None:
    """Resolve requirements for the target, download them verified, and write a bundle.

    Every file is hash-pinned; the bundle carries requirements.txt (--hash),
    pylock.toml, SHA256SUMS, pip.conf and install.sh for a host without offpkg.
    """
    ui.state.json = as_json
    t0 = time.monotonic()
    # Imported here, not at the top: other commands (and --help) need not load the bundle machinery.
    from ...backends import get_backend
    from ...bundle import BundleOptions, build_bundle
    from ...net.cache import Cache
    from ...resolve import collect_inputs
    from ._common import UIEvents, settings, sources_from_options, targets_from_options

    cfg = settings()
    if sign_keys:
        from ...trust.sshsig import key_fingerprint

        for key in sign_keys:  # a wrong key fails now, not after the downloads
            key_fingerprint(Path(key))
    targets = targets_from_options(target_files, python_version, platforms, cfg)
    sources = sources_from_options(index_url, extra_index_url, find_links, cfg=cfg)
    backend = backend or cfg.get("backend")
    cache_dir = cache_dir or cfg.get("cache_dir")
    requirements: list[str] = []
    stack_needs_cuda = False
    if stack:
        from ...stacks import get_stack

        st = get_stack(stack)
        requirements += list(st.requirements)
        stack_needs_cuda = st.needs_cuda
    inputs = None
    if reqs or req_files or not (stack or conda_env):
        inputs = collect_inputs(list(reqs), [Path(f) for f in req_files], [Path(f) for f in constraint_files])
        extra_reqs, constraints = inputs.requirements, inputs.constraints
        if inputs.index_url or inputs.extra_index_urls or inputs.find_links or inputs.no_index:
            # Index options inside the files, as pip reads them; the command line's own options win.
            sources = sources_from_options(index_url or inputs.index_url,
                                           tuple(dict.fromkeys((*extra_index_url, *inputs.extra_index_urls))),
                                           tuple(dict.fromkeys((*find_links, *inputs.find_links))),
                                           no_index=inputs.no_index and not index_url, cfg=cfg)
    else:
        extra_reqs, constraints = [], [Path(f) for f in constraint_files]
    requirements += extra_reqs
    from ...trust.pins import collect_pins

    hash_pins = collect_pins([Path(f) for f in req_files], constraints)
    opts = BundleOptions(requirements=requirements, targets=targets, sources=sources, backend=get_backend(backend),
                         output=Path(output), constraints=constraints, cache=Cache(Path(cache_dir) if cache_dir else None, verify=verify_cache),
                         force=force, tools=tools, stack=stack, reuse_lock=not refresh,
                         sign_keys=[Path(k) for k in sign_keys], hash_pins=hash_pins,
                         deny_licenses=[*(cfg.get("deny_licenses") or []), *deny_licenses])
    from ...review.licenses import check_patterns

    check_patterns(opts.deny_licenses)  # a bad pattern fails now, not after the downloads
    from ...gpu.policy import torch_build_request

    cuda, explicit = torch_build_request(requirements, cuda_option=cuda, torch_index=torch_index,
                                         stack_needs_cuda=stack_needs_cuda, configured=cfg.get("cuda"))
    if cuda:
        from ...gpu.bundle import apply_cuda

        apply_cuda(opts, cuda, torch_version, index_base=torch_index, explicit=explicit)
    hook = _smoke_hook(stack) if smoke else None
    if base:
        from ...updates.delta import load_base

        opts.base = load_base(Path(base))

    with ui.reporter() as r, contextlib.ExitStack() as stack_:
        if conda_env:
            from ...conda.bundle import add_conda_env

            # Packs the environment into a temp file that lives until the bundle is written.
            stack_.enter_context(add_conda_env(opts, conda_env, pip_as_wheels, UIEvents(r),
                                               explicit_target=bool(target_files or python_version or platforms)))
        elif pip_as_wheels:
            raise click.UsageError("--pip-as-wheels goes with --conda-env")
        if inputs is not None and inputs.direct:
            _add_direct(opts, inputs.direct, stack_)
        res = build_bundle(opts, UIEvents(r), verify_hook=hook)
    from ...updates.delta import delta_info

    m = res.manifest
    from ...smoke import unverified_targets, verified_label

    verified = (m.verification or {}).get("verified")
    unproven = unverified_targets(m.verification)
    failed = [c["name"] for c in (m.verification or {}).get("checks", []) if not c["ok"]]
    # A target with no matching interpreter here is reported unverified (not a failure of the bundle).
    proven_ok = bool(verified) or (bool(unproven) and not failed and not (m.verification or {}).get("error"))
    payload = {
        "ok": not smoke or proven_ok, "output": str(res.path), "packages": len(m.requirement_packages),
        "total_size": m.total_size(), "downloaded_bytes": res.downloaded_bytes, "cached_files": res.cached_files,
        "reused_locks": res.reused_locks,
        "built_from_sdist": res.built_from_sdist, "seconds": round(time.monotonic() - t0, 3),
        "timings": {k: round(v, 3) for k, v in res.timings.items()}, "targets": [t.id for t in targets],
        "cuda": m.cuda, "conda": m.conda, "verification": m.verification, "backend": opts.backend.name,
        "built_from": m.extra.get("built_from", []),
        "signed_with": list(sign_keys),
        "delta": delta_info(m),
        "hash_pins": res.hash_pins,
    }
    if as_json:
        ui.emit_json("bundle", payload)
    else:
        ui.table(None, ["", ""], [
            ["bundle", str(res.path)],
            ["targets", ", ".join(t.describe() for t in targets)],
            ["packages", f"{len(m.requirement_packages)} wheels ({len(res.built_from_sdist)} built from sdist)"],
            ["size", ui.human_size(m.total_size())],
            ["downloaded", f"{ui.human_size(res.downloaded_bytes)} ({res.cached_files} files from cache)"],
            ["time", f"{payload['seconds']:.1f} s (resolve {res.timings.get('resolve', 0):.1f} s, "
                     f"fetch {res.timings.get('fetch', 0):.1f} s)"],
            *([["cuda", f"{m.cuda.get('variant')} (driver >= {m.cuda.get('min_driver')})"]] if m.cuda else []),
            *([["conda", f"{m.conda.get('path')} ({m.conda.get('platform')}, {m.conda.get('packages')} packages)"]]
              if m.conda else []),
            *([["verified", verified_label(m.verification)]] if smoke else []),
            *([["delta", f"of base {m.delta.base_manifest_sha256[:16]}…: carries "
                         f"{payload['delta']['carried_files']} files, the base provides "
                         f"{payload['delta']['provided_files']} ({ui.human_size(payload['delta']['provided_bytes'])})"]]
              if m.delta else []),
            *([["signed", f"{len(sign_keys)} signature(s) in offpkg.json.sig"]] if sign_keys else []),
            *([["hashes", _hash_pins_line(res.hash_pins)]] if res.hash_pins else []),
        ])
    for t in unproven:
        ui.warn(f"target {t['target']} ({t['describe']}) is NOT verified: {t['reason']}")


def _hash_pins_line(pins: dict[str, list[str]]) -> str:
    """Whose hashes came from where, when the user pinned some (pip --require-hashes style)."""
    line = f"{len(pins['pinned'])} package(s) matched your --hash pins"
    if pins["from_index"]:
        line += (f"; the other {len(pins['from_index'])} ({', '.join(pins['from_index'])}) are pinned with the "
                 "index's hashes")
    return line
