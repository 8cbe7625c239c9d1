"""Review before the gap: the CycloneDX SBOM, licenses and the deny gate, THIRD_PARTY_NOTICES, the HTML report.

Real parts: tiny real wheels (pkgfactory) with PEP 639, classifier-only, free-text and
unknown license metadata, license files and a PEP 770 SBOM inside, served from a real
index on 127.0.0.1 and bundled by the real CLI; the SBOM checked by cyclonedx-python-lib's
strict JSON validator against the files in the bundle; the report opened in a real
headless Chromium (DOM text, a screenshot, and proof that it makes no network request).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import html.parser
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import threading
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import assert_clean_error, run_offpkg, serve
from pkgfactory import Dist, build_wheel, write_simple_index

from offpkg.review.licenses import License, denied
from offpkg.review.sbom import validate_sbom

MIT_TEXT = "MIT License\n\nCopyright (c) 2024 The mitexpr authors\n\nPermission is hereby granted, free of charge\n"
CLASSIC_TEXT = "Copyright (c) 1999 Classic Corp.\nRedistribution and use in source and binary forms, with or without\n"
HOSTILE = "Custom <script>alert('x')</script> terms \x1b[31mred\x1b[0m"


# ------------------------------------------------------------------ wheels with license metadata

class MetaDist(Dist):
    """A Dist with extra METADATA headers (License-Expression, Classifier, ...)."""

    def __init__(self, name: str, version: str, requires: list[str] | None = None, headers: list[str] | None = None):
        super().__init__(name, version, list(requires or []))
        self.headers = list(headers or [])

    def metadata(self) -> str:
        _, _, rest = super().metadata().partition("\n")
        return "Metadata-Version: 2.4\n" + "".join(h + "\n" for h in self.headers) + rest


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def add_files(wheel: Path, files: dict[str, bytes]) -> None:
    """Add files under the wheel's .dist-info (paths relative to it) and rewrite RECORD: still a valid wheel."""
    with zipfile.ZipFile(wheel) as z:
        content = {n: z.read(n) for n in z.namelist()}
    di = next(n.split("/")[0] for n in content if n.endswith(".dist-info/METADATA"))
    content.pop(f"{di}/RECORD")
    content.update({f"{di}/{rel}": data for rel, data in files.items()})
    rec = io.StringIO()
    w = csv.writer(rec, lineterminator="\n")
    for n, data in content.items():
        w.writerow([n, _record_hash(data), len(data)])
    w.writerow([f"{di}/RECORD", "", ""])
    content[f"{di}/RECORD"] = rec.getvalue().encode()
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as z:
        for n, data in content.items():
            zi = zipfile.ZipInfo(n, date_time=(2020, 1, 1, 0, 0, 0))
            zi.external_attr = 0o644 << 16
            z.writestr(zi, data)


EMBEDDED_SBOM = {"bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1, "components": [
    {"type": "library", "name": "libfoo", "version": "1.2.3", "purl": "pkg:generic/libfoo@1.2.3",
     "hashes": [{"alg": "SHA-256", "content": "ab" * 32}]}]}


def build_license_set(files: Path) -> None:
    """The packages of these tests, one per way of declaring a license."""
    w = build_wheel(MetaDist("mitexpr", "1.0", ["classic>=2", "unknownlic", "winonly; sys_platform == 'win32'"],
                             ["License-Expression: mit OR apache-2.0", "License-File: LICENSE"]), files)
    add_files(w, {"licenses/LICENSE": MIT_TEXT.encode()})
    w = build_wheel(MetaDist("classic", "2.0", headers=["Classifier: License :: OSI Approved :: MIT License",
                                                        "Classifier: Programming Language :: Python"]), files)
    add_files(w, {"LICENSE.txt": CLASSIC_TEXT.encode()})
    build_wheel(MetaDist("unknownlic", "0.1", headers=[f"License: {HOSTILE}"]), files)
    build_wheel(MetaDist("winonly", "1.0"), files)
    build_wheel(MetaDist("gplpkg", "3.0", headers=["License-Expression: GPL-3.0-only"]), files)
    build_wheel(MetaDist("dualpkg", "1.0", headers=["License-Expression: MIT OR GPL-3.0-or-later"]), files)
    build_wheel(MetaDist("bsdonly", "1.0", headers=["Classifier: License :: OSI Approved :: BSD License"]), files)
    build_wheel(MetaDist("apachename", "1.0", headers=["License: Apache 2.0"]), files)
    w = build_wheel(MetaDist("withsbom", "1.0", headers=["License-Expression: BSD-3-Clause"]), files)
    add_files(w, {"sboms/bundled.cdx.json": json.dumps(EMBEDDED_SBOM).encode()})
    build_wheel(MetaDist("withsbom", "0.9", headers=["License-Expression: BSD-3-Clause"]), files)
    import ensurepip

    for whl in (Path(ensurepip.__file__).parent / "_bundled").glob("pip-*.whl"):
        shutil.copy(whl, files / whl.name)


@pytest.fixture(scope="module")
def lindex(tmp_path_factory):
    root = tmp_path_factory.mktemp("licindex")
    build_license_set(root / "files")
    write_simple_index(root / "files", root)
    server, base = serve(root)
    yield f"{base}/simple"
    server.shutdown()


@pytest.fixture(scope="module")
def work(tmp_path_factory, session_uv_cache):
    base = tmp_path_factory.mktemp("review")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "OFFPKG_", "CONDA"))}
    home = base / "home"
    home.mkdir()
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_CACHE_HOME=str(home / ".cache"),
               PIP_CONFIG_FILE=os.devnull, OFFPKG_CACHE_DIR=str(base / "cache"), UV_CACHE_DIR=str(session_uv_cache),
               PYTHONUTF8="1", NO_COLOR="1", CI="1")
    return {"base": base, "env": env, "bundles": {}}


TARGET = ["--python-version", "3.11", "--platform", "manylinux_2_28_x86_64"]


@pytest.fixture(scope="module")
def make(work, lindex):
    """make(key, *args) -> bundle path; each bundle built once per module by the real CLI."""

    def build(key: str, *args: str, out_name: str | None = None) -> Path:
        if key not in work["bundles"]:
            out = work["base"] / (out_name or key)
            proc = run_offpkg(["bundle", *args, "-i", lindex, *TARGET, "-o", str(out), "--json"], work["env"])
            assert proc.returncode == 0, proc.stdout + proc.stderr
            work["bundles"][key] = out
        return work["bundles"][key]

    return build


def _components(doc: dict) -> dict[str, dict]:
    return {c["bom-ref"]: c for c in doc["components"]}


def _props(c: dict) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in c.get("properties", []):
        out.setdefault(p["name"], []).append(p["value"])
    return out


# ------------------------------------------------------------------ the SBOM

def test_sbom_validates_and_names_every_carried_file(make) -> None:
    b = make("main", "mitexpr", "withsbom==1.0")
    text = (b / "sbom.cdx.json").read_text()
    assert validate_sbom(text) == []
    # the library's strict validator, called directly as well
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    doc = json.loads(text)
    assert doc["specVersion"] == "1.6" and doc["bomFormat"] == "CycloneDX"
    comps = _components(doc)
    carried = sorted(p for p in b.rglob("*.whl"))
    assert {p.name for p in carried} >= {"mitexpr-1.0-py3-none-any.whl", "classic-2.0-py3-none-any.whl"}
    libs = [c for c in comps.values() if c["type"] == "library"]
    assert len(libs) == len(carried)  # one component per carried file, no more
    for path in carried:
        name, version = path.name.split("-")[:2]
        ref = f"pkg:pypi/{name}@{version}?file_name={path.name}"
        c = comps[ref]
        assert c["purl"] == ref and c["name"] == name and c["version"] == version
        assert c["hashes"] == [{"alg": "SHA-256", "content": hashlib.sha256(path.read_bytes()).hexdigest()}]
        props = _props(c)
        assert props["offpkg:path"] == [path.relative_to(b).as_posix()]
        assert props["offpkg:target"] == ["cp311-manylinux_2_28_x86_64"]
        if path.parent.name == "tools":
            assert props["offpkg:role"] == ["tool"] and c["scope"] == "excluded"
        else:
            assert props["offpkg:role"] == ["requirement"] and c["scope"] == "required"
    assert any(p.parent.name == "tools" for p in carried)  # pip is carried and marked as a tool
    assert comps["pkg:pypi/mitexpr@1.0?file_name=mitexpr-1.0-py3-none-any.whl"]["licenses"] == [
        {"expression": "MIT OR Apache-2.0"}]
    # PEP 770: the SBOM inside withsbom's wheel is merged as its sub-component
    ws = comps["pkg:pypi/withsbom@1.0?file_name=withsbom-1.0-py3-none-any.whl"]
    assert [(s["name"], s["version"], s["purl"]) for s in ws["components"]] == [
        ("libfoo", "1.2.3", "pkg:generic/libfoo@1.2.3")]
    assert _props(ws)["offpkg:embedded-sbom"][0].startswith("withsbom-1.0.dist-info/sboms/bundled.cdx.json sha256:")
    # the dependency graph comes from the lock: target -> top level -> what it requires (win32-only dep left out)
    deps = {d["ref"]: d.get("dependsOn", []) for d in doc["dependencies"]}
    assert sorted(deps["target:cp311-manylinux_2_28_x86_64"]) == [
        "pkg:pypi/mitexpr@1.0?file_name=mitexpr-1.0-py3-none-any.whl",
        "pkg:pypi/withsbom@1.0?file_name=withsbom-1.0-py3-none-any.whl"]
    assert sorted(deps["pkg:pypi/mitexpr@1.0?file_name=mitexpr-1.0-py3-none-any.whl"]) == [
        "pkg:pypi/classic@2.0?file_name=classic-2.0-py3-none-any.whl",
        "pkg:pypi/unknownlic@0.1?file_name=unknownlic-0.1-py3-none-any.whl"]
    assert not any("winonly" in r for r in comps)
    # listed and hashed in the manifest and SHA256SUMS, so verify (and a signature) cover it
    m = json.loads((b / "offpkg.json").read_text())
    entry = {f["path"]: f for f in m["files"]}["sbom.cdx.json"]
    assert entry["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert f"{entry['sha256']}  sbom.cdx.json" in (b / "SHA256SUMS").read_text()


def test_sbom_is_per_target_for_a_multi_target_bundle(work, lindex, tmp_path) -> None:
    from offpkg.target import Target

    paths = []
    for arch in ("aarch64", "x86_64"):
        p = tmp_path / f"{arch}.json"
        p.write_text(json.dumps(Target.from_options("3.11", [f"manylinux_2_28_{arch}"]).to_json()))
        paths += ["--target", str(p)]
    out = tmp_path / "multi"
    proc = run_offpkg(["bundle", "mitexpr", "-i", lindex, *paths, "--no-tools", "-o", str(out)], work["env"])
    assert proc.returncode == 0, proc.stderr
    text = (out / "sbom.cdx.json").read_text()
    assert validate_sbom(text) == []
    doc = json.loads(text)
    platforms = sorted(c["name"] for c in doc["components"] if c["type"] == "platform")
    assert platforms == ["cp311-manylinux_2_28_aarch64", "cp311-manylinux_2_28_x86_64"]
    for c in doc["components"]:
        if c["type"] == "library":
            assert sorted(_props(c)["offpkg:target"]) == platforms
    deps = {d["ref"]: d.get("dependsOn", []) for d in doc["dependencies"]}
    for t in platforms:
        assert deps[f"target:{t}"] == ["pkg:pypi/mitexpr@1.0?file_name=mitexpr-1.0-py3-none-any.whl"]


# ------------------------------------------------------------------ licenses

EXPECTED = {
    "mitexpr": ("MIT OR Apache-2.0", "License-Expression"),
    "classic": ("MIT", "classifier"),
    "unknownlic": ("unknown", "License"),
    "apachename": ("Apache-2.0", "License"),
    "bsdonly": ("unknown", "classifier"),  # "BSD License" names no single license
    "withsbom": ("BSD-3-Clause", "License-Expression"),
}


def test_licenses_from_each_wheels_metadata(make, work) -> None:
    b = make("lic", "mitexpr", "apachename", "bsdonly", "withsbom==1.0", "--no-tools")
    proc = run_offpkg(["licenses", str(b), "--json"], work["env"])
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    got = {p["name"]: (p["license"], p["license_source"]) for p in doc["packages"]}
    assert got == EXPECTED
    raw = {p["name"]: p["license_raw"] for p in doc["packages"]}
    assert raw["unknownlic"].startswith("Custom <script>") and raw["bsdonly"] == "License :: OSI Approved :: BSD License"
    assert doc["summary"]["unknown"] == 2 and doc["unknown"] == 2 and doc["source"] == "wheels"
    # The same answers from an archive, which is read through its hash-checked SBOM.
    tar = work["base"] / "lic.tar"
    with tarfile.open(tar, "w") as tf:
        for p in sorted(b.rglob("*")):
            tf.add(p, p.relative_to(b).as_posix(), recursive=False)
    proc = run_offpkg(["licenses", str(tar), "--json"], work["env"])
    assert proc.returncode == 0, proc.stderr
    doc2 = json.loads(proc.stdout)
    assert {p["name"]: (p["license"], p["license_source"]) for p in doc2["packages"]} == EXPECTED
    assert doc2["source"] == "sbom.cdx.json"
    # Text output: the hostile License value cannot drive the terminal.
    proc = run_offpkg(["licenses", str(b)], work["env"])
    assert proc.returncode == 0 and "\x1b" not in proc.stdout and "MIT OR Apache-2.0" in proc.stdout


def test_licenses_refuses_an_archive_whose_sbom_was_changed(make, work) -> None:
    b = make("lic", "mitexpr", "apachename", "bsdonly", "withsbom==1.0", "--no-tools")
    tar = work["base"] / "tampered.tar"
    with tarfile.open(tar, "w") as tf:
        for p in sorted(b.rglob("*")):
            rel = p.relative_to(b).as_posix()
            if rel == "sbom.cdx.json":
                data = p.read_bytes().replace(b"MIT OR Apache-2.0", b"MIT OR Apache-2.1")
                ti = tarfile.TarInfo(rel)
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
            else:
                tf.add(p, rel, recursive=False)
    proc = run_offpkg(["licenses", str(tar)], work["env"])
    assert_clean_error(proc, 3, "sbom.cdx.json does not match the sha256 in the manifest")


def test_notices_gather_the_wheels_license_files(make) -> None:
    b = make("main", "mitexpr", "withsbom==1.0")
    text = (b / "THIRD_PARTY_NOTICES").read_text()
    assert MIT_TEXT.strip() in text and CLASSIC_TEXT.strip() in text
    assert "mitexpr 1.0  (license: MIT OR Apache-2.0)" in text
    assert "--- licenses/LICENSE" in text and "--- LICENSE.txt" in text
    assert "unknownlic 0.1  (license: unknown; declared: Custom <script>" in text
    assert "\x1b" not in text  # control characters from a wheel do not reach the notices
    m = json.loads((b / "offpkg.json").read_text())
    assert "THIRD_PARTY_NOTICES" in {f["path"] for f in m["files"]}


@pytest.mark.parametrize("expr,deny,refused", [
    ("MIT OR GPL-3.0-or-later", ["GPL-*"], False),  # the user may take MIT
    ("MIT AND GPL-3.0-or-later", ["GPL-*"], True),
    ("GPL-2.0-only WITH Classpath-exception-2.0", ["gpl-2.0-only"], True),
    ("Apache-2.0", ["GPL-*", "AGPL-*"], False),
    ("unknown", ["unknown"], True),
    ("unknown", ["GPL-*"], False),
])
def test_deny_semantics(expr: str, deny: list[str], refused: bool) -> None:
    assert denied(License(expr, "License-Expression"), deny) is refused


# ------------------------------------------------------------------ the gate

def _listing(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def test_gate_refuses_naming_the_packages_and_writes_nothing(work, lindex, tmp_path) -> None:
    out = tmp_path / "out"
    before = _listing(tmp_path)
    proc = run_offpkg(["bundle", "mitexpr", "gplpkg", "dualpkg", "-i", lindex, *TARGET, "-o", str(out),
                       "--deny-license", "GPL-*", "--deny-license", "unknown"], work["env"])
    assert_clean_error(proc, 11, "denied license", "gplpkg 3.0: GPL-3.0-only", "unknownlic 0.1: unknown",
                       "no bundle was written")
    assert "dualpkg" not in proc.stderr  # MIT OR GPL: not refused
    assert not out.exists() and _listing(tmp_path) == before  # nothing at OUT, no temporary left beside it
    # --json: one error document with the exit code and the packages
    proc = run_offpkg(["bundle", "gplpkg", "-i", lindex, *TARGET, "-o", str(out), "--deny-license",
                       "GPL-3.0-only", "--json"], work["env"])
    assert proc.returncode == 11
    doc = json.loads(proc.stdout)
    assert doc["ok"] is False and doc["error"]["exit_code"] == 11 and doc["error"]["type"] == "LicensePolicyError"
    assert doc["error"]["problems"] == ["gplpkg 3.0: GPL-3.0-only"]
    assert not out.exists()


def test_gate_from_the_config_key(work, lindex, tmp_path) -> None:
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "offpkg.toml").write_text('deny-licenses = ["GPL-3.0-only"]\n')
    proc = run_offpkg(["bundle", "gplpkg", "-i", lindex, *TARGET, "-o", str(proj / "b")], work["env"], cwd=proj)
    assert_clean_error(proc, 11, "gplpkg 3.0: GPL-3.0-only")
    assert not (proj / "b").exists()
    ok = run_offpkg(["bundle", "dualpkg", "-i", lindex, *TARGET, "-o", str(proj / "d"), "--no-tools"],
                    work["env"], cwd=proj)
    assert ok.returncode == 0, ok.stderr


def test_a_bad_deny_pattern_fails_before_any_download(work, tmp_path) -> None:
    # the index is unreachable on purpose: the pattern must be refused first
    proc = run_offpkg(["bundle", "x", "-i", "http://127.0.0.1:9/simple", *TARGET, "-o", str(tmp_path / "b"),
                       "--deny-license", "GPL<3>"], work["env"])
    assert_clean_error(proc, 3, "is not an SPDX license id")


def test_licenses_deny_on_an_existing_bundle(make, work) -> None:
    b = make("lic", "mitexpr", "apachename", "bsdonly", "withsbom==1.0", "--no-tools")
    proc = run_offpkg(["licenses", str(b), "--deny-license", "unknown", "--json"], work["env"])
    assert proc.returncode == 11
    doc = json.loads(proc.stdout)  # one document: the licenses, with ok false
    assert doc["ok"] is False and sorted(doc["denied"]) == ["bsdonly 1.0", "unknownlic 0.1"]
    proc = run_offpkg(["licenses", str(b), "--deny-license", "unknown"], work["env"])
    assert_clean_error(proc, 11, "bsdonly 1.0", "unknownlic 0.1")


# ------------------------------------------------------------------ the report in a real browser

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]


@pytest.fixture(scope="module")
def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/setup-system.sh installs it; the report cannot be proven")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return exe


def _chromium(exe: str, tmp: Path, url: str, *extra: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    return subprocess.run([*prefix, exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, url], check=False,
                          capture_output=True, text=True, timeout=180, env={**os.environ, "HOME": str(tmp)})


class _Text(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: list[str] = []
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append(tag)
        self.urls += [v for k, v in attrs if k in ("src", "href", "srcset", "action", "poster", "data") and v]

    def handle_data(self, data) -> None:
        self.text.append(data)


def _parse(text: str) -> _Text:
    p = _Text()
    p.feed(text)
    return p


@pytest.fixture(scope="module")
def report(make, work):
    base = make("base", "classic", "withsbom==0.9", "--no-tools")
    b = make("main", "mitexpr", "withsbom==1.0")
    out = work["base"] / "report.html"
    proc = run_offpkg(["report", str(b), "--base", str(base), "-o", str(out), "--json"], work["env"])
    assert proc.returncode == 0, proc.stderr
    return out, json.loads(proc.stdout)


def test_report_renders_in_chromium_offline(report, chromium, offline, tmp_path) -> None:
    out, summary = report
    assert summary["verified"] and summary["signatures"] == "unsigned" and summary["packages"] == 4
    # Under unshare -n: no network exists, and the page still renders whole.
    dom = _chromium(chromium, tmp_path, out.as_uri(), "--dump-dom", prefix=offline)
    assert dom.returncode == 0, dom.stderr[-2000:]
    page = _parse(dom.stdout)
    text = " ".join(" ".join(page.text).split())
    for name in ("mitexpr", "classic", "unknownlic", "withsbom", "pip"):
        assert name in text
    for needle in ("verified", "unsigned", "MIT OR Apache-2.0", "BSD-3-Clause", "Where the size goes",
                   "Changes since base", "added", "withsbom 0.9 → 1.0", "not run"):
        assert needle in text, needle
    # The hostile License value is text, not markup: no script element, its text shown escaped.
    assert "script" not in page.tags and "Custom <script>alert('x')</script> terms" in text
    assert "svg" in page.tags and page.tags.count("rect") >= 5
    shot = tmp_path / "report.png"
    proc = _chromium(chromium, tmp_path, out.as_uri(), f"--screenshot={shot}", "--window-size=1200,2400",
                     prefix=offline)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def _page_requests(netlog: Path) -> tuple[list[str], set[str]]:
    """(URLs requested on behalf of a file:// page, hosts of the browser's own background requests) from a net-log."""
    d = json.loads(netlog.read_text())
    names = {v: k for k, v in d["constants"]["logEventTypes"].items()}
    page, background = [], set()
    for e in d["events"]:
        p = e.get("params") or {}
        if names.get(e["type"]) != "URL_REQUEST_START_JOB" or "url" not in p:
            continue
        if p.get("network_isolation_key", "").startswith("file://") or p.get("initiator") == "null":
            if not p["url"].startswith(("file:", "data:")):
                page.append(p["url"])
        else:
            background.add(urlsplit(p["url"]).hostname or "")
    return page, background


class _Proxy:
    """A loopback listener used as the browser's proxy: every request that leaves the browser lands here."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.hosts: list[str] = []
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with c:
                c.settimeout(5)
                try:
                    line = c.recv(4096).split(b"\r\n", 1)[0].decode("latin-1").split()
                except OSError:
                    continue
                if len(line) >= 2:  # CONNECT host:443 or GET http://host/...
                    self.hosts.append(urlsplit(line[1] if "://" in line[1] else f"//{line[1]}").hostname or "")

    def close(self) -> None:
        self.sock.close()


def _watched(chromium: str, tmp: Path, url: str) -> tuple[list[str], set[str], list[str]]:
    proxy = _Proxy()
    log = tmp / f"net-{len(list(tmp.glob('net-*')))}.json"
    try:
        proc = _chromium(chromium, tmp, url, "--dump-dom", f"--proxy-server=http://127.0.0.1:{proxy.port}",
                         "--proxy-bypass-list=<-loopback>", f"--log-net-log={log}")
        assert proc.returncode == 0, proc.stderr[-2000:]
    finally:
        proxy.close()
    page, background = _page_requests(log)
    return page, background, proxy.hosts


def test_report_makes_no_network_request(report, chromium, tmp_path) -> None:
    out, _ = report
    # The detectors work: a control page with one remote image is caught by both.
    control = tmp_path / "control.html"
    control.write_text('<!DOCTYPE html><p>control</p><img src="http://offpkg-control.invalid/x.png">')
    page, background, hosts = _watched(chromium, tmp_path, control.as_uri())
    assert page == ["http://offpkg-control.invalid/x.png"]
    assert "offpkg-control.invalid" in hosts and "offpkg-control.invalid" not in background
    # The report: nothing requested on its behalf (net-log), and nothing reached the loopback
    # proxy but the browser's own background requests, which the net-log tells apart.
    page, background, hosts = _watched(chromium, tmp_path, out.as_uri())
    assert page == []
    assert set(hosts) <= background, set(hosts) - background
    # And statically: no URL to load in any attribute or style, and a CSP that forbids loads.
    html_text = out.read_text()
    parsed = _parse(html_text)
    assert parsed.urls == [] and "url(" not in html_text and "@import" not in html_text
    assert "default-src 'none'" in html_text and "<script" not in html_text


def test_report_of_a_damaged_bundle_says_so(make, work, tmp_path) -> None:
    src = make("lic", "mitexpr", "apachename", "bsdonly", "withsbom==1.0", "--no-tools")
    b = tmp_path / "damaged"
    shutil.copytree(src, b)
    wheel = b / "wheels" / "apachename-1.0-py3-none-any.whl"
    data = bytearray(wheel.read_bytes())
    data[len(data) // 3] ^= 0xFF  # same size, different bytes
    wheel.write_bytes(bytes(data))
    out = tmp_path / "r.html"
    proc = run_offpkg(["report", str(b), "-o", str(out), "--json"], work["env"])
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["verified"] is False and any("apachename" in p for p in doc["problems"])
    text = out.read_text()
    assert "FAILED" in text and "Integrity problems" in text


def test_report_errors_are_clean(work, tmp_path) -> None:
    proc = run_offpkg(["report", str(tmp_path / "missing"), "-o", str(tmp_path / "r.html"), "--json"], work["env"])
    assert proc.returncode == 3
    assert json.loads(proc.stdout)["error"]["exit_code"] == 3
    assert not (tmp_path / "r.html").exists()


# ------------------------------------------------------------------ conda bundles

def test_conda_packages_are_pkg_conda_components(work, lindex, tmp_path) -> None:
    import condaenv

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(tmp_path / "home-rattler"))  # rattler must not touch the real home
        fx = condaenv.make_fixture(tmp_path / "fx")
        env = fx.make_env(tmp_path / "env")
    out = tmp_path / "cb"
    proc = run_offpkg(["bundle", "--conda-env", str(env), "mitexpr", "-i", lindex, "--no-tools", "-o", str(out),
                       "--json"], work["env"])
    assert proc.returncode == 0, proc.stderr
    text = (out / "sbom.cdx.json").read_text()
    assert validate_sbom(text) == []
    doc = json.loads(text)
    records = {json.loads(p.read_text())["name"]: json.loads(p.read_text()) for p in (env / "conda-meta").glob("*.json")}
    conda = {c["name"]: c for c in doc["components"] if c.get("purl", "").startswith("pkg:conda/")}
    assert sorted(conda) == sorted(records) and {"python", "tinylib", "tinycli"} <= set(conda)
    for name, c in conda.items():
        rec = records[name]
        assert c["purl"].startswith(f"pkg:conda/{name}@{rec['version']}?build={rec['build']}")
        assert {"alg": "SHA-256", "content": rec["sha256"]} in c["hashes"]
        assert c["licenses"] == [{"expression": "MIT"}] and _props(c)["offpkg:role"] == ["conda"]
    deps = {d["ref"]: d.get("dependsOn", []) for d in doc["dependencies"]}
    assert sorted(deps["conda-env"]) == sorted(c["bom-ref"] for c in conda.values())
    # the wheels next to the environment are there too, and `licenses` lists both kinds
    assert any(c["name"] == "mitexpr" for c in doc["components"])
    lic = json.loads(run_offpkg(["licenses", str(out), "--json"], work["env"]).stdout)
    roles = {p["name"]: p["role"] for p in lic["packages"]}
    assert roles["tinylib"] == "conda" and roles["mitexpr"] == "requirement"


def test_report_of_a_hostile_manifest_escapes_and_does_not_crash(make, work, tmp_path) -> None:
    src = make("lic", "mitexpr", "apachename", "bsdonly", "withsbom==1.0", "--no-tools")
    b = tmp_path / "hostile"
    shutil.copytree(src, b)
    m = json.loads((b / "offpkg.json").read_text())
    m["cuda"] = {"variant": "<img src=http://x.invalid/a>", "archs": 5, "torch": ["x"], "min_driver": {"a": 1}}
    # (offpkg.manifest refuses records of the wrong shape; these have the right shape and hostile text)
    m["verification"] = {"verified": False, "when": "<i>12</i>", "checks": [
        {"name": "<b>n</b>", "ok": True, "report": {"checks": "x"}}, {"name": "second", "ok": False}]}
    m["extra"] = {"stack": {"<script>": 1}, "rocm": "nope"}
    m["requirements"] = ["<script>alert(1)</script>"]
    (b / "offpkg.json").write_text(json.dumps(m))
    out = tmp_path / "r.html"
    proc = run_offpkg(["report", str(b), "-o", str(out), "--json"], work["env"])
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["verified"] is False  # SHA256SUMS no longer matches the manifest
    text = out.read_text()
    assert "<script" not in text and "<img" not in text and "<b>n</b>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "&lt;img src=http://x.invalid/a&gt;" in text
    assert "&lt;b&gt;n&lt;/b&gt;" in text and "&lt;i&gt;12&lt;/i&gt;" in text


def test_report_shows_who_signed_and_whether_they_are_trusted(make, work, tmp_path) -> None:
    pytest.importorskip("offpkg.trust", reason="the trust work (signatures) is not in this build")
    if shutil.which("ssh-keygen") is None:
        pytest.fail("ssh-keygen is missing: .ci/setup-system.sh installs openssh-client")
    b = tmp_path / "signed"
    shutil.copytree(make("lic", "mitexpr", "apachename", "bsdonly", "withsbom==1.0", "--no-tools"), b)
    key = tmp_path / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "builder", "-f", str(key)], check=True)
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    (tmp_path / "allowed").write_text(f"builder@example.org {(tmp_path / 'id.pub').read_text()}")
    (tmp_path / "strangers").write_text(f"someone@example.org {(tmp_path / 'other.pub').read_text()}")
    signed = run_offpkg(["sign", str(b), "--key", str(key)], work["env"])
    assert signed.returncode == 0, signed.stderr
    cases = {"allowed": ("trusted", "builder@example.org"), "strangers": ("signed", "not in the trust anchor"),
             None: ("signed", "give --trust")}
    for anchor, (state, needle) in cases.items():
        out = tmp_path / f"r-{anchor}.html"
        proc = run_offpkg(["report", str(b), "-o", str(out), "--json",
                           *(["--trust", str(tmp_path / anchor)] if anchor else [])], work["env"])
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(proc.stdout)
        assert doc["signatures"] == state and doc["verified"], doc
        assert needle in out.read_text()
