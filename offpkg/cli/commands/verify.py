from __future__ import annotations

from pathlib import Path

import click

from .. import ui
from ...errors import VerificationError
from ..options import json_option, trust_option
from ...verify import verify_bundle


@click.command()
@click.argument("bundle", type=click.Path(exists=False))
@click.option("--smoke", is_flag=True, help="Also install into a throwaway venv with no network and run the smoke test.")
@click.option("--python", type=click.Path(dir_okay=False), help="Interpreter for the smoke test's venv.")
@click.option("--system-site-packages", is_flag=True, help="Let the smoke test's venv see the system site-packages.")
@trust_option
@json_option
def verify(bundle: str, smoke: bool, python: str | None, system_site_packages: bool, trust: str | None,
           as_json: bool) -> None:
    """Check a bundle (directory or archive): every file, both ways, and its locks.

    With a trust anchor (--trust, OFFPKG_TRUST or the `trust` config key) the
    bundle must also be signed by one of its keys. Prints the sha256 to record
    out of band, every problem found, and exits 1 if there is any.
    """
    ui.state.json = as_json
    from ...trust import resolve_anchor
    from ._common import settings

    anchor = resolve_anchor(trust, settings())
    path = Path(bundle)
    total = _manifest_total(path)
    with ui.reporter() as r:
        r.start("verify", f"verifying {bundle}", total, bytes_=True)
        report = verify_bundle(path, progress=lambda n: r.advance("verify", n), trust=anchor)
        r.finish("verify")
    payload = report.to_json()
    if report.ok and smoke and report.manifest is not None and report.manifest.delta is not None:
        from ...errors import UsageError

        raise UsageError(f"{bundle} is a delta bundle: --smoke needs the complete state, which a delta does not carry",
                         hint="the smoke test of `bundle --base ... --verify` ran on the complete state when it was built")
    if report.ok and smoke:
        from ...install import opened_bundle
        from ...smoke import smoke_test

        assert report.manifest is not None
        with opened_bundle(Path(bundle)) as bdir, ui.spinner("smoke test: offline install into a throwaway venv"):
            result = smoke_test(bdir, report.manifest, stack=report.manifest.extra.get("stack"),
                                python=Path(python) if python else None, system_site_packages=system_site_packages)
        payload["smoke"] = result
        if not result["verified"]:
            report.problems.append("smoke test failed: " + ", ".join(c["name"] for c in result["checks"] if not c["ok"]))
            report.ok = False
    payload["ok"] = report.ok
    if as_json:
        ui.emit_json("verify", payload)
    if not report.ok:
        if as_json:
            raise SystemExit(1)
        untrusted = report.trust is not None and report.trust.anchor is not None and not report.trust.trusted
        if untrusted and not [p for p in report.problems if p not in report.trust.problems]:
            raise VerificationError(f"{bundle} is not signed by a trusted key (trust anchor {report.trust.anchor})",
                                    report.problems, hint="get the bundle again from its builder, signed (offpkg bundle "
                                                          "--sign, offpkg sign); a new signer's key goes into the "
                                                          "trust anchor (docs/trust.md)")
        raise VerificationError(f"{bundle}: {len(report.problems)} problem(s) found", report.problems,
                                hint="copy the bundle again from its source, or rebuild it")
    ui.result(f"ok: {bundle}: {report.files_checked} files, {ui.human_size(report.bytes_checked)} verified"
              f" in {report.seconds:.2f} s" + (" + smoke test passed" if smoke else ""))
    ui.result(f"sha256 ({report.digest_of}): {report.digest}")
    if report.trust is not None:
        ui.result(f"signature: {report.trust.summary()}")
        if any(s.status == "invalid" for s in report.trust.signatures):
            ui.warn("a signature does not match this offpkg.json: the bundle was changed after it was signed")
        if not report.trust.trusted:
            ui.info("without a trust anchor this proves the bundle is intact, not who made it: compare the sha256 "
                    "above with the one recorded at the source, or pass --trust ALLOWED_SIGNERS (docs/trust.md)")
    delta = payload.get("delta")
    if delta:
        ui.result(f"this is a delta bundle for the base whose manifest sha256 is {delta['base_manifest_sha256']}"
                  f" (created {delta['base_created'] or 'unknown'}): the base provides {delta['provided_files']} "
                  f"files ({ui.human_size(delta['provided_bytes'])}); it installs only with `offpkg install --upgrade`"
                  " onto a venv installed from that base")


def _manifest_total(path: Path) -> int | None:
    """Bytes to hash, for the progress bar (None when the manifest cannot be read yet)."""
    try:
        from ...manifest import Manifest

        return Manifest.read(path).total_size() if path.is_dir() else None
    except Exception:
        return None  # verify_bundle reports the real problem
