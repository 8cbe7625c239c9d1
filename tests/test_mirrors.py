"""`offpkg mirror ...` against real HTTP mirrors on 127.0.0.1, real pip.conf/.condarc files in a
temporary HOME, and the index choice the downloads use."""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

sys.path.insert(0, str(Path(__file__).parent))
from mirror_servers import PROJECT, Behaviour, MirrorServer, closed_port  # noqa: E402

from offpkg import config as config_mod  # noqa: E402
from offpkg.mirrors import catalog as mirrors  # noqa: E402
from offpkg.cli.commands.mirror import cli  # noqa: E402
from offpkg.errors import UsageError  # noqa: E402

TOKEN = "s3cr3t-T0ken-4242"


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary HOME so the user's own pip.conf/.condarc/config are never read or written."""
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("HOME", str(h))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(h / ".config"))
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(tmp_path / "etc-xdg"))
    for var in ("VIRTUAL_ENV", "CONDARC", "CONDA_PREFIX", "CONDA_ROOT", "CONDA_EXE", "CONDA_CHANNELS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    return h


def invoke(*args: str) -> Result:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result


def as_json(result: Result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, MirrorServer]]:
    specs = {
        "good": Behaviour(),
        "slow": Behaviour(delay=0.4),
        "stale": Behaviour(versions=("1.0",)),
        "down": Behaviour(status=503),
        "broken": Behaviour(truncate_page=True),
    }
    started = {name: MirrorServer(b).start() for name, b in specs.items()}
    yield started
    for s in started.values():
        s.stop()


def mirror_args(servers: dict[str, MirrorServer], *names: str) -> list[str]:
    out = []
    for n in names:
        out += ["--mirror", f"{n}={servers[n].url}"]
    return out


# --------------------------------------------------------------------------- catalog


def test_catalog_covers_the_three_kinds() -> None:
    cat = mirrors.catalog()
    pypi = [m for m in cat if m.kind == "pypi"]
    assert pypi[0].name == "official" and pypi[0].url == "https://pypi.org/simple"
    assert {m.name for m in pypi} >= {"tuna", "aliyun", "douban", "ustc", "tencent", "huawei", "bfsu", "sjtu", "nju"}
    tuna = mirrors.find(cat, "tuna", "conda")[0]
    assert dict(tuna.custom_channels)["conda-forge"] == "https://mirrors.tuna.tsinghua.edu.cn/anaconda/cloud"
    assert tuna.default_channels[0].endswith("/anaconda/pkgs/main")
    torch = {m.name: m for m in cat if m.kind == "pytorch"}
    assert torch["official"].url == "https://download.pytorch.org/whl"
    assert torch["aliyun"].layout == "find-links"
    # Everything we could not fetch says so.
    assert all(m.checked is False for m in cat if not (m.kind == "pypi" and m.name == "official"))
    assert all(m.url.startswith("https://") for m in cat)


def test_list_json_and_text() -> None:
    data = as_json(invoke("list", "--json"))
    assert data["schema_version"] == 1 and data["command"] == "mirror list"
    assert {"name", "kind", "url", "region", "notes", "checked"} <= set(data["mirrors"][0])
    text = invoke("list").stdout
    assert "https://repo.huaweicloud.com/repository/pypi/simple" in text  # never cut to fit
    assert "unreliable" in text


# --------------------------------------------------------------------------- mirror test


def test_ranks_real_servers(servers: dict[str, MirrorServer]) -> None:
    names = ("down", "stale", "broken", "slow", "good")
    data = as_json(invoke("test", *mirror_args(servers, *names), "--project", PROJECT, "--timeout", "5", "--json"))
    order = [m["name"] for m in data["mirrors"]]
    assert order[:3] == ["good", "slow", "stale"], order
    assert set(order[3:]) == {"down", "broken"}
    by = {m["name"]: m for m in data["mirrors"]}
    assert data["best"] == "good" and data["best_url"] == servers["good"].url
    assert by["good"]["ok"] and by["good"]["fresh"] is True and by["good"]["newest"] == "1.1"
    assert by["good"]["throughput_bps"] > 0 and by["good"]["sample_bytes"] == 256 * 1024
    assert by["slow"]["fresh"] is True and by["slow"]["latency_ms"] >= 400 > by["good"]["latency_ms"]
    assert by["stale"]["ok"] and by["stale"]["fresh"] is False and by["stale"]["newest"] == "1.0"
    assert not by["down"]["ok"] and by["down"]["error"].startswith("HTTP 503")
    assert not by["broken"]["ok"] and by["broken"]["error"] == "connection closed mid-response"
    for m in data["mirrors"]:
        assert set(m) >= {"name", "url", "ok", "latency_ms", "throughput_bps", "fresh", "error"}
    # The order is remembered for the downloads' fallback (in the test's cache dir).
    cache = Path(os.environ["OFFPKG_CACHE_DIR"]) / mirrors.RANKING_FILE
    assert [e["name"] for e in json.loads(cache.read_text())["ranking"]][:3] == ["good", "slow", "stale"]


def test_failures_are_reported_never_fatal(servers: dict[str, MirrorServer]) -> None:
    dead = f"http://127.0.0.1:{closed_port()}/simple"
    result = invoke("test", "--mirror", f"dead={dead}", *mirror_args(servers, "down"), "--project", PROJECT,
                    "--timeout", "2")
    assert result.exit_code == 0, result.output
    assert "connection refused" in result.stdout and "FAILED" in result.stdout
    assert "no mirror answered" in result.stderr
    data = as_json(invoke("test", "--mirror", f"dead={dead}", "--project", PROJECT, "--timeout", "2", "--json"))
    assert data["best"] is None and data["mirrors"][0]["ok"] is False


def test_wrong_hash_fails_the_mirror() -> None:
    with MirrorServer(Behaviour(wrong_hash=True)) as liar:
        data = as_json(invoke("test", "--mirror", f"liar={liar.url}", "--project", PROJECT, "--json"))
    assert data["mirrors"][0]["ok"] is False and "does not match" in data["mirrors"][0]["error"]


def test_credentials_never_shown(servers: dict[str, MirrorServer]) -> None:
    url = servers["good"].url.replace("http://", f"http://alice:{TOKEN}@")
    dead = f"http://bob:{TOKEN}@127.0.0.1:{closed_port()}/simple?token={TOKEN}"
    for fmt in ([], ["--json"]):
        result = invoke("test", "--mirror", f"corp={url}", "--mirror", f"dead={dead}", "--project", PROJECT, *fmt)
        assert result.exit_code == 0
        assert TOKEN not in result.stdout and TOKEN not in result.stderr
        assert "****@127.0.0.1" in result.stdout
    assert servers["good"].behaviour.hits  # the request really went out with the URL


def test_unknown_name_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["test", "nosuchmirror"])
    assert isinstance(result.exception, UsageError) and "known:" in (result.exception.hint or "")
    result = CliRunner().invoke(cli, ["test", "--mirror", "justaname"])
    assert isinstance(result.exception, UsageError)


# --------------------------------------------------------------------------- mirror use / reset

PIP_CONF = """\
# lab settings: keep me
[global]
timeout = 120
cert = /etc/ssl/lab.pem

[install]
no-compile = true
"""


def test_use_fastest_writes_pip_conf_and_reset_restores(servers: dict[str, MirrorServer], tmp_path: Path) -> None:
    conf = tmp_path / "pip.conf"
    conf.write_text(PIP_CONF)
    result = invoke("use", "--fastest", *mirror_args(servers, "stale", "good", "down"), "--project", PROJECT,
                    "--pip-conf", str(conf))
    assert result.exit_code == 0, result.output
    new = conf.read_text()
    good = servers["good"]
    assert f"index-url = {good.url}\n" in new
    assert f"trusted-host = 127.0.0.1:{good.port}\n" in new  # plain http only
    assert "timeout = 120\n" in new and "timeout = 60" not in new  # the user's timeout is kept
    for line in PIP_CONF.splitlines(keepends=True):
        assert line in new
    assert f"+index-url = {good.url}" in result.stdout  # the diff
    backups = [p.name for p in tmp_path.iterdir() if ".offpkg-backup" in p.name]
    assert backups == ["pip.conf.offpkg-backup.1"]
    result = invoke("reset", "--pip-conf", str(conf))
    assert result.exit_code == 0, result.output
    assert conf.read_text() == PIP_CONF  # byte-exact
    assert not any(".offpkg-backup" in p.name for p in tmp_path.iterdir())


def test_use_https_catalog_mirror_no_trusted_host_and_dry_run(tmp_path: Path) -> None:
    conf = tmp_path / "pip.conf"
    data = as_json(invoke("use", "tuna", "--pip-conf", str(conf), "--dry-run", "--json"))
    assert not conf.exists()  # dry run writes nothing
    assert not list(tmp_path.glob("pip.conf*"))
    diff = data["files"][0]["diff"]
    assert "+index-url = https://pypi.tuna.tsinghua.edu.cn/simple" in diff and "trusted-host" not in diff
    assert data["files"][0]["written"] is False and data["dry_run"] is True
    as_json(invoke("use", "tuna", "--pip-conf", str(conf), "--json"))
    assert conf.read_text() == "[global]\nindex-url = https://pypi.tuna.tsinghua.edu.cn/simple\ntimeout = 60\n"
    again = as_json(invoke("use", "tuna", "--pip-conf", str(conf), "--json"))
    assert again["files"][0]["changed"] is False and len(list(tmp_path.glob("pip.conf.offpkg-backup*"))) == 1
    # Reset of a file offpkg created removes it.
    invoke("reset", "--pip-conf", str(conf))
    assert not conf.exists()


def test_switching_from_http_mirror_drops_its_trusted_host(tmp_path: Path) -> None:
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nindex-url = http://old.lan:3141/simple\ntrusted-host = old.lan:3141\n    other.lan\n")
    invoke("use", "aliyun", "--pip-conf", str(conf))
    text = conf.read_text()
    assert "old.lan" not in text and "trusted-host = other.lan\n" in text


def test_use_with_credentials_writes_them_only_into_the_file(tmp_path: Path) -> None:
    conf = tmp_path / "pip.conf"
    url = f"https://deploy:{TOKEN}@nexus.corp.example/repository/pypi/simple"
    for fmt in ([], ["--json"]):
        result = invoke("use", "corp", "--mirror", f"corp={url}", "--pip-conf", str(conf), *fmt)
        assert result.exit_code == 0, result.output
        assert TOKEN not in result.stdout and TOKEN not in result.stderr
    assert f"index-url = {url}\n" in conf.read_text()
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600  # a file holding a token is private


CONDARC = """\
# conda settings of the lab
channels:
- conda-forge
- defaults
ssl_verify: true   # corporate CA
custom_channels:
  internal: https://conda.corp.example/channels   # keep me
envs_dirs:
  - /data/envs

# trailing comment
auto_activate_base: false
"""


def test_use_conda_mirror_round_trip(home: Path) -> None:
    rc = home / ".condarc"
    rc.write_text(CONDARC)
    result = invoke("use", "bfsu", "--only", "conda")  # --scope user -> ~/.condarc
    assert result.exit_code == 0, result.output
    assert not (home / ".config" / "pip" / "pip.conf").exists()
    new = rc.read_text()
    for line in CONDARC.splitlines(keepends=True):
        assert line in new, line
    from offpkg.mirrors.confedit import CondarcDoc

    doc = CondarcDoc(new)
    assert doc.get("channels") == ["conda-forge", "defaults"]  # the user's channel list is kept
    assert doc.get("custom_channels") == {"internal": "https://conda.corp.example/channels",
                                          "conda-forge": "https://mirrors.bfsu.edu.cn/anaconda/cloud",
                                          "pytorch": "https://mirrors.bfsu.edu.cn/anaconda/cloud"}
    assert doc.get("default_channels")[0] == "https://mirrors.bfsu.edu.cn/anaconda/pkgs/main"
    assert doc.get("show_channel_urls") is True
    # Back to the official channels: the mirror's entries go, the user's stay.
    invoke("use", "official", "--condarc", str(rc))
    assert rc.read_text() == CONDARC + "show_channel_urls: true\n"
    invoke("reset", "--condarc", str(rc))
    invoke("reset", "--condarc", str(rc))
    assert rc.read_text() == CONDARC


def test_use_both_files_by_scope_and_show(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PIP_CONFIG_FILE")
    data = as_json(invoke("use", "tuna", "--json"))
    assert [f["kind"] for f in data["files"]] == ["pip", "conda"]
    pip_conf = home / ".config" / "pip" / "pip.conf"
    assert pip_conf.exists() and (home / ".condarc").exists()
    shown = as_json(invoke("show", "--json"))
    assert shown["pip"]["index_url"] == {"value": "https://pypi.tuna.tsinghua.edu.cn/simple",
                                         "source": str(pip_conf), "mirror": "tuna"}
    assert shown["conda"]["settings"]["default_channels"]["sources"] == [str(home / ".condarc")]
    # An environment variable overrides every file, and `use` says so.
    monkeypatch.setenv("PIP_INDEX_URL", "https://env.example/simple")
    data = as_json(invoke("use", "aliyun", "--only", "pip", "--json"))
    assert any("PIP_INDEX_URL" in w for w in data["warnings"])
    shown = as_json(invoke("show", "--json"))
    assert shown["pip"]["index_url"]["source"] == "env PIP_INDEX_URL"
    text = invoke("show").stdout
    assert "env PIP_INDEX_URL" in text


def test_use_needs_a_name_or_fastest_and_reset_needs_a_backup(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["use"])
    assert isinstance(result.exception, UsageError)
    result = CliRunner().invoke(cli, ["reset", "--pip-conf", str(tmp_path / "none.conf")])
    assert "no offpkg backup" in str(result.exception)
    result = CliRunner().invoke(cli, ["use", "aliyun", "--condarc", str(tmp_path / ".condarc"), "--only", "conda"])
    # aliyun has no conda mirror in the catalog: nothing to write is an error, not a silent no-op.
    assert isinstance(result.exception, UsageError)


def test_malformed_pip_conf_is_refused_untouched(tmp_path: Path) -> None:
    conf = tmp_path / "pip.conf"
    conf.write_text("[global\nindex-url = x\n")
    result = CliRunner().invoke(cli, ["use", "tuna", "--pip-conf", str(conf)])
    assert "not a valid pip configuration file" in str(result.exception)
    assert conf.read_text() == "[global\nindex-url = x\n"


# --------------------------------------------------------------------------- index_urls / torch_index_base


def cfg(**values: object) -> config_mod.Config:
    c = config_mod.defaults()
    c.values.update(values)
    return c


def test_index_urls(tmp_path: Path) -> None:
    official, tuna = "https://pypi.org/simple", "https://pypi.tuna.tsinghua.edu.cn/simple"
    assert mirrors.index_urls(cfg(), "https://only.example/simple") == ["https://only.example/simple"]
    urls = mirrors.index_urls(cfg(cache_dir=str(tmp_path)))
    assert urls[:2] == [official, tuna]
    assert "https://pypi.doubanio.com/simple/" not in urls  # unreliable: never an automatic fallback
    urls = mirrors.index_urls(cfg(mirror="aliyun", cache_dir=str(tmp_path)))
    assert urls[:2] == ["https://mirrors.aliyun.com/pypi/simple/", official] and len(urls) == len(set(urls))
    # A private index gets no public fallback unless asked for.
    private = "https://u:p@nexus.corp/simple"
    assert mirrors.index_urls(cfg(index_url=private)) == [private]
    assert mirrors.index_urls(cfg(index_url=private, fallback=True, cache_dir=str(tmp_path)))[:2] == [private, official]
    assert mirrors.index_urls(cfg(mirror="corp", mirrors={"corp": {"url": private, "kind": "pypi"}})) == [private]
    assert mirrors.index_urls(cfg(mirror="tuna", fallback=False)) == [tuna]
    assert mirrors.index_urls(cfg(fallback=False)) == [official]
    with pytest.raises(UsageError):
        mirrors.index_urls(cfg(mirror="nosuch"))


def test_index_urls_follow_the_last_test(tmp_path: Path) -> None:
    results = [mirrors.ProbeResult("bfsu", "https://mirrors.bfsu.edu.cn/pypi/web/simple", ok=True),
               mirrors.ProbeResult("official", "https://pypi.org/simple", ok=False),
               mirrors.ProbeResult("nju", "https://mirror.nju.edu.cn/pypi/web/simple", ok=True)]
    mirrors.save_ranking(results, tmp_path, project="pip")
    urls = mirrors.index_urls(cfg(cache_dir=str(tmp_path)))
    assert urls[:3] == ["https://mirrors.bfsu.edu.cn/pypi/web/simple", "https://mirror.nju.edu.cn/pypi/web/simple",
                        "https://pypi.org/simple"]
    assert mirrors.index_urls(cfg(mirror="tuna", cache_dir=str(tmp_path)))[:2] == [
        "https://pypi.tuna.tsinghua.edu.cn/simple", "https://mirrors.bfsu.edu.cn/pypi/web/simple"]
    assert mirrors.load_ranking(tmp_path, max_age_s=-1) == []  # too old: ignored


def test_torch_index_base() -> None:
    assert mirrors.torch_index_base(cfg()) == "https://download.pytorch.org/whl"
    assert mirrors.torch_index_base(cfg(torch_index_url="https://m.example/whl/")) == "https://m.example/whl"
    # Aliyun's torch mirror is find-links style: not usable as an index base.
    assert mirrors.torch_index_base(cfg(mirror="aliyun")) == "https://download.pytorch.org/whl"
    c = cfg(mirror="corp", mirrors={"corp": {"url": "https://art.corp/pytorch", "kind": "pytorch"}})
    assert mirrors.torch_index_base(c) == "https://art.corp/pytorch"


# --------------------------------------------------------------------------- the real public mirrors


@pytest.mark.network
def test_real_public_mirrors() -> None:
    """Probes every catalog PyPI mirror. From the build machines only pypi.org answers: the
    others must come back as reported failures, never as a crash or a non-zero exit."""
    data = as_json(invoke("test", "--timeout", "8", "--json"))
    by = {m["name"]: m for m in data["mirrors"]}
    assert set(by) >= {"official", "tuna", "aliyun"}
    assert by["official"]["ok"] is True and by["official"]["fresh"] is True, by["official"]
    assert data["best"] is not None
    for m in data["mirrors"]:
        assert m["ok"] or m["error"], m
