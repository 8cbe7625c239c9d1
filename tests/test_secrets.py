"""Secrets stay secret: indexes that really require credentials, and a grep of everything.

Servers on 127.0.0.1 that answer 401/403 without the secret: HTTP basic auth
(``user:pass@``, ``token@``, ``token:@``), a ``?token=`` on every URL, and
presigned-style file links (``X-Amz-Signature=``). Each bundle must succeed
(so uv/pip and offpkg's own downloads really used the credentials), and then
stdout, stderr (plain, ``-vv`` and ``--json``), every file of the bundle, the
offpkg cache and the temporary HOME are searched for each secret in plain,
URL-encoded and base64 (Authorization header) form: no hit is allowed. Failing
runs (an unknown package, a server error) are searched the same way.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from fault_servers import Fault, FaultServer, counting, figure, observe
from pkgfactory import Dist, build_wheel, write_simple_index

PASSWORD = "S3CRET/PASS+w0rd"  # '/' and '+' so the URL-encoded form differs from the plain one
TOKEN = "T0KEN-9f8e7d6c5b4a"
QTOKEN = "Q-S3CRET-TOKEN-42"
SIGNATURE = "SIG-0123456789abcdef-S3CRET"


@dataclass
class Case:
    id: str
    server: dict  # FaultServer keyword arguments
    secrets: list[str]

    def url(self, srv: FaultServer) -> str:
        host = srv.base.removeprefix("http://")
        return {
            "userpass": f"http://user:{quote(PASSWORD, safe='')}@{host}/simple",
            "token-user": f"http://{TOKEN}@{host}/simple",
            "token-colon": f"http://{TOKEN}:@{host}/simple",
            "query-token": f"http://{host}/simple?token={QTOKEN}",
            "signed-files": f"http://{host}/simple",
        }[self.id]


CASES = [
    Case("userpass", {"auth": ("user", PASSWORD)}, [PASSWORD, base64.b64encode(f"user:{PASSWORD}".encode()).decode()]),
    Case("token-user", {"auth": (TOKEN, "")}, [TOKEN, base64.b64encode(f"{TOKEN}:".encode()).decode()]),
    Case("token-colon", {"auth": (TOKEN, "")}, [TOKEN, base64.b64encode(f"{TOKEN}:".encode()).decode()]),
    Case("query-token", {"token": QTOKEN}, [QTOKEN]),
    Case("signed-files", {"sign_files": SIGNATURE}, [SIGNATURE]),
]


@pytest.fixture(scope="module", autouse=True)
def _tally() -> None:
    with counting("test_secrets"):
        yield


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("secretidx")
    files = root / "files"
    build_wheel(Dist("alpha", "1.0", ["beta"]), files)
    build_wheel(Dist("beta", "1.0"), files)
    write_simple_index(files, root)
    return root


def forms(secret: str) -> set[str]:
    return {secret, quote(secret, safe=""), quote(secret), quote(secret, safe="").lower()}


def leaks(secrets: list[str], texts: dict[str, str | bytes]) -> list[str]:
    """``where: form`` for every secret form found in any text (must be empty)."""
    found = []
    for where, text in texts.items():
        data = text.encode() if isinstance(text, str) else text
        for s in secrets:
            for f in forms(s):
                if f.encode() in data:
                    found.append(f"{where}: {f}")
    if "url" not in texts:  # the sanity check on the URL itself is not a leak
        figure("secret_searches", len(texts) * sum(len(forms(s)) for s in secrets))
        figure("secrets_leaked", len(found))
    return found


def tree(root: Path, label: str) -> dict[str, bytes]:
    if not root.exists():
        return {}
    if root.is_file():
        return {label: root.read_bytes()}
    return {f"{label}/{p.relative_to(root)}": p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_credentials_are_used_and_never_shown(case: Case, repo: Path, tmp_path: Path, env, offpkg) -> None:
    texts: dict[str, str | bytes] = {}
    with FaultServer(repo, **case.server) as srv:
        url = case.url(srv)
        # -vv adds the debug logs of offpkg and urllib3 (request lines); the human
        # output is checked once, on the richest case.
        runs = {"json-vv": ["--json", "-vv"], **({"vv": ["-vv"]} if case.id == "userpass" else {})}
        for name, flags in runs.items():
            out = tmp_path / f"out-{name}"
            # Global options go before the command.
            pre, post = [f for f in flags if f == "-vv"], [f for f in flags if f != "-vv"]
            proc = observe(offpkg([*pre, "bundle", "alpha", "-i", url, "-o", str(out), "--no-tools",
                                   "--backend", "uv", *post], env, timeout=120))
            assert proc.returncode == 0, proc.stderr
            texts |= {f"{name}:stdout": proc.stdout, f"{name}:stderr": proc.stderr}
            texts |= tree(out, f"{name}:bundle")
            if name == "json-vv":
                assert json.loads(proc.stdout)["ok"] is True
        refused = [h for h in srv.hits if h.status in (401, 403)]
        served = [h for h in srv.hits if h.status in (200, 206) and "/files/alpha-" in h.path]
    assert served, "the credentials were never used"
    assert not [h for h in refused if h.agent.startswith("offpkg/")], refused  # offpkg's own requests carried them
    manifest = json.loads((tmp_path / "out-json-vv" / "offpkg.json").read_text())
    assert manifest["indexes"] and all("@" not in u for u in manifest["indexes"])
    texts |= tree(Path(env["OFFPKG_CACHE_DIR"]), "cache") | tree(Path(env["HOME"]), "home")
    assert leaks(case.secrets, texts) == []
    # Sanity: the search would have found it (the wheels' names are in the texts; the secret is in the URL).
    assert leaks(case.secrets, {"url": url}) != [] or case.id == "signed-files"


def test_pip_backend_keeps_basic_auth_secret(repo: Path, tmp_path: Path, env, offpkg) -> None:
    case = CASES[0]
    with FaultServer(repo, **case.server) as srv:
        proc = observe(offpkg(["-vv", "bundle", "alpha", "-i", case.url(srv), "-o", str(tmp_path / "out"),
                               "--no-tools", "--backend", "pip"], env, timeout=120))
        assert proc.returncode == 0, proc.stderr
    texts = {"stdout": proc.stdout, "stderr": proc.stderr} | tree(tmp_path / "out", "bundle")
    assert leaks(case.secrets, texts) == []


FAILURES = [("userpass", "unknown"), ("query-token", "unknown"), ("userpass", "files-500"),
            ("signed-files", "files-500")]


@pytest.mark.parametrize("case_id,failure", FAILURES, ids=[f"{c}-{f}" for c, f in FAILURES])
def test_failing_runs_keep_secrets(case_id: str, failure: str, repo: Path, tmp_path: Path, env, offpkg) -> None:
    """Error paths print URLs (the index for an unknown package, the file for a download error)."""
    case = next(c for c in CASES if c.id == case_id)
    faults = [Fault("status", match="/files/", status=500, agent="offpkg/")]
    with FaultServer(repo, faults, **case.server) as srv:
        req = "no-such-package-xyz" if failure == "unknown" else "alpha"
        proc = observe(offpkg(["-vv", "bundle", req, "-i", case.url(srv), "-o", str(tmp_path / "o"), "--no-tools",
                               "--json"], env, timeout=120))
    assert proc.returncode == (3 if failure == "unknown" else 5), proc.stderr
    assert "Traceback" not in proc.stderr and json.loads(proc.stdout)["command"] == "error"
    assert ("unknown package" if failure == "unknown" else "HTTP 500") in proc.stderr
    texts = {"stdout": proc.stdout, "stderr": proc.stderr} | tree(Path(env["OFFPKG_CACHE_DIR"]), "cache")
    assert leaks(case.secrets, texts) == []


def test_redaction_of_every_url_form() -> None:
    """The in-process building blocks: error messages of the index client and fetcher."""
    from offpkg.errors import NetworkError
    from offpkg.net.index import IndexClient

    for url in (f"http://user:{quote(PASSWORD, safe='')}@127.0.0.1:9/simple", f"http://{TOKEN}@127.0.0.1:9/simple",
                f"http://{TOKEN}:@127.0.0.1:9/simple", f"http://127.0.0.1:9/simple?token={QTOKEN}"):
        with pytest.raises(NetworkError) as ei:
            IndexClient([url], retries=0, timeout=1).files("alpha")
        text = f"{ei.value.message} {ei.value.hint} {ei.value!r}"
        assert leaks([PASSWORD, TOKEN, QTOKEN], {"error": text}) == [], text
