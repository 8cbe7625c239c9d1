"""Round-trip editing of real pip.conf and .condarc files, backups, atomic writes, and
where pip and conda look for their configuration (checked against real pip)."""

from __future__ import annotations

import configparser
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offpkg.mirrors import confedit
from offpkg.mirrors import conflookup
from offpkg._subprocess import isolated_env
from offpkg.mirrors.confedit import CondarcDoc, IniDoc, UnsupportedYaml
from offpkg.errors import InputError

PIP_CONF = """\
# pip configuration of a lab machine
; semicolon comment too
[global]
timeout = 120
index_url=https://old.example.com/simple
extra-index-url =
    https://extra-one.example.com/simple
    # an indented comment between values
    https://extra-two.example.com/simple
cert = /etc/ssl/lab.pem

# install tweaks
[install]
no-compile = true
"""

CONDARC = """\
# my conda settings
channels:
- conda-forge
- defaults
ssl_verify: true   # corporate CA
envs_dirs:
  - /data/envs
custom_channels:
  internal: https://conda.corp.example/channels   # keep me
proxy_servers:
  http: http://proxy:3128

# trailing comment
auto_activate_base: false
"""


def _untouched(old: str, new: str, changed_keys: tuple[str, ...]) -> None:
    """Every line of ``old`` that does not mention a changed key is still in ``new``, in order."""
    new_lines = new.splitlines(keepends=True)
    pos = 0
    for line in old.splitlines(keepends=True):
        if any(k in line for k in changed_keys):
            continue
        while pos < len(new_lines) and new_lines[pos] != line:
            pos += 1
        assert pos < len(new_lines), f"line lost or reordered: {line!r}"
        pos += 1


# --------------------------------------------------------------------------- INI


def test_ini_set_keeps_every_other_line_byte_for_byte() -> None:
    doc = IniDoc(PIP_CONF)
    doc.set("global", "index-url", "https://new.example.com/simple")
    doc.set("global", "trusted-host", ["a.example.com", "b.example.com:8080"])
    new = doc.text()
    # The key keeps its spelling and separator (index_url=).
    assert "index_url=https://new.example.com/simple\n" in new
    _untouched(PIP_CONF, new, ("index_url",))
    # The new key lands at the end of [global], before the comment of [install].
    assert new.index("trusted-host") < new.index("# install tweaks")
    parsed = configparser.RawConfigParser()
    parsed.read_string(new)
    assert parsed.get("global", "index_url") == "https://new.example.com/simple"
    assert parsed.get("global", "trusted-host").split() == ["a.example.com", "b.example.com:8080"]
    assert doc.get_list("global", "extra-index-url") == ["https://extra-one.example.com/simple",
                                                          "https://extra-two.example.com/simple"]


def test_ini_new_section_crlf_and_missing_final_newline() -> None:
    text = "[install]\r\nno-compile = true"
    doc = IniDoc(text)
    doc.set("global", "index-url", "https://m.example/simple")
    assert doc.text() == "[install]\r\nno-compile = true\r\n\r\n[global]\r\nindex-url = https://m.example/simple\r\n"
    doc = IniDoc("")
    doc.set("global", "index-url", "https://m.example/simple")
    assert doc.text() == "[global]\nindex-url = https://m.example/simple\n"


def test_ini_replacing_multiline_value_and_removing() -> None:
    doc = IniDoc(PIP_CONF)
    doc.set("global", "extra-index-url", "https://only.example/simple")
    assert "extra-two" not in doc.text() and "an indented comment" not in doc.text()
    assert doc.get("global", "cert") == "/etc/ssl/lab.pem"
    assert doc.remove("install", "no-compile")
    assert "no-compile" not in doc.text() and "[install]" in doc.text()


def test_ini_malformed_is_a_clear_input_error() -> None:
    with pytest.raises(InputError, match="not a valid pip configuration file"):
        IniDoc("[global]\nindex-url = a\nindex-url = b\n", path="/x/pip.conf")
    with pytest.raises(InputError, match="pip.conf"):
        IniDoc("index-url = outside-any-section\n", path="/x/pip.conf")


_names = st.sampled_from(["timeout", "cert", "no-cache-dir", "proxy", "retries"])
_values = st.text(alphabet="abcdefghij/:.-0123456789", min_size=1, max_size=20)
_comments = st.sampled_from(["# note\n", "; other\n", "\n", "   \n", "#\n"])


@st.composite
def ini_texts(draw: st.DrawFn) -> str:
    out = []
    for section in draw(st.lists(st.sampled_from(["global", "install", "download", "freeze"]), unique=True,
                                 max_size=3)):
        out.append(draw(_comments) if draw(st.booleans()) else "")
        out.append(f"[{section}]\n")
        for name in draw(st.lists(_names, unique=True, max_size=3)):
            sep = draw(st.sampled_from([" = ", "=", ": "]))
            out.append(f"{name}{sep}{draw(_values)}\n")
            if draw(st.booleans()):
                out.append(draw(_comments))
    return "".join(out)


@settings(max_examples=150, deadline=None)
@given(ini_texts(), _values)
def test_ini_property_setting_touches_only_that_option(text: str, url: str) -> None:
    doc = IniDoc(text)
    assert doc.text() == text  # reading alone changes nothing
    doc.set("global", "index-url", url)
    new = doc.text()
    parser = configparser.RawConfigParser()
    parser.read_string(new)
    assert parser.get("global", "index-url") == url
    # Everything that was there is still there, in order.
    _untouched(text, new, ("index-url",))
    before = configparser.RawConfigParser()
    before.read_string(text)
    for s in before.sections():
        for k, v in before.items(s):
            assert parser.get(s, k) == v


# --------------------------------------------------------------------------- .condarc


def test_condarc_reads_the_subset() -> None:
    doc = CondarcDoc(CONDARC)
    assert doc.get("channels") == ["conda-forge", "defaults"]
    assert doc.get("ssl_verify") is True
    assert doc.get("custom_channels") == {"internal": "https://conda.corp.example/channels"}
    assert doc.get("auto_activate_base") is False
    assert doc.get("default_channels") is None
    flow = CondarcDoc("channels: [defaults, 'conda-forge']  # flow\ncustom_channels: {a: 'https://x/y'}\n")
    assert flow.get("channels") == ["defaults", "conda-forge"]
    assert flow.get("custom_channels") == {"a": "https://x/y"}


def test_condarc_set_replaces_only_its_block() -> None:
    doc = CondarcDoc(CONDARC)
    doc.set("channels", ["defaults"])
    doc.set("show_channel_urls", True)
    new = doc.text()
    # The list keeps the style it had ("- item" under its key); every other block is untouched.
    assert new.startswith("# my conda settings\nchannels:\n- defaults\nssl_verify: true   # corporate CA\n")
    assert new.endswith("auto_activate_base: false\nshow_channel_urls: true\n")
    _untouched(CONDARC, new, ("- conda-forge", "- defaults", "channels:\n"))
    assert CondarcDoc(new).get("channels") == ["defaults"]


def test_condarc_update_map_keeps_other_entries_and_their_comments() -> None:
    doc = CondarcDoc(CONDARC)
    doc.update_map("custom_channels", {"conda-forge": "https://m.example/cloud"})
    new = doc.text()
    assert "  internal: https://conda.corp.example/channels   # keep me\n" \
           "  conda-forge: https://m.example/cloud\n" in new
    doc.update_map("custom_channels", {}, remove=["conda-forge", "internal"])
    assert "custom_channels" not in doc.text()
    assert doc.text() == CONDARC.replace(
        "custom_channels:\n  internal: https://conda.corp.example/channels   # keep me\n", "")


def test_condarc_unsupported_values_are_refused_not_guessed() -> None:
    doc = CondarcDoc("channels:\n  - &a defaults\n  - *a\ncustom_channels:\n  x:\n    nested: 1\n")
    assert doc.get("channels") == ["defaults", "defaults"]  # real YAML (anchors, aliases) is read as YAML
    with pytest.raises(UnsupportedYaml, match="nested"):
        doc.get("custom_channels")  # conda wants one URL per channel, not a mapping
    with pytest.raises(InputError, match="tabs"):
        CondarcDoc("channels:\n\t- defaults\n")
    with pytest.raises(InputError, match="not valid YAML"):
        CondarcDoc("channels: [defaults\n")
    with pytest.raises(InputError, match="not a mapping"):
        CondarcDoc("- defaults\n")


def test_condarc_round_trip_keeps_comments_quotes_anchors_and_crlf() -> None:
    text = ("# top\r\nchannels: &ch\r\n  - 'conda-forge'   # quoted\r\nenvs_dirs: *ch\r\n"
            "custom_channels: {a: \"https://x/y\"}  # flow\r\n")
    doc = CondarcDoc(text)
    doc.update_map("custom_channels", {"b": "https://z/w"})
    doc.set("show_channel_urls", True)
    new = doc.text()
    assert "\r\n" in new and "\n" not in new.replace("\r\n", "")
    assert new.startswith("# top\r\nchannels: &ch\r\n  - 'conda-forge'   # quoted\r\nenvs_dirs: *ch\r\n")
    assert "custom_channels: {a: \"https://x/y\", b: https://z/w} # flow\r\n" in new
    assert new.endswith("show_channel_urls: true\r\n")
    assert CondarcDoc(new).get("custom_channels") == {"a": "https://x/y", "b": "https://z/w"}
    assert CondarcDoc(text).text() == text  # unchanged: byte for byte
    aliased = CondarcDoc("channels: &ch\n  - defaults\nenvs_dirs: *ch\n")
    aliased.set("channels", ["conda-forge"])  # the anchor's owner rewritten: the alias must stay valid
    assert CondarcDoc(aliased.text()).get("envs_dirs") == ["defaults"]


# --------------------------------------------------------------------------- files


def test_atomic_write_keeps_mode_and_follows_symlinks(tmp_path: Path) -> None:
    real = tmp_path / "real.conf"
    real.write_text("old\n")
    os.chmod(real, 0o600)
    link = tmp_path / "link.conf"
    link.symlink_to(real)
    confedit.atomic_write(link, "new\n")
    assert link.is_symlink() and real.read_text() == "new\n"
    assert stat.S_IMODE(real.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    fresh = tmp_path / "sub" / "dir" / "pip.conf"
    confedit.atomic_write(fresh, "x\n", mode=0o600)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600


def test_backups_form_a_history_back_to_the_original(tmp_path: Path) -> None:
    path = tmp_path / "pip.conf"
    # First write: the file did not exist.
    confedit.FileChange(path, None, "one\n", "pip").apply()
    confedit.FileChange(path, "one\n", "two\n", "pip").apply()
    confedit.FileChange(path, "two\n", "three\n", "pip").apply()
    names = [p.name for p in confedit.backups(path)]
    assert names == ["pip.conf.offpkg-backup.1.absent", "pip.conf.offpkg-backup.2", "pip.conf.offpkg-backup.3"]
    assert confedit.restore(path)[2] == "two\n" and path.read_text() == "two\n"
    assert confedit.restore(path)[2] == "one\n" and path.read_text() == "one\n"
    confedit.restore(path)
    assert not path.exists() and confedit.backups(path) == []
    with pytest.raises(InputError, match="no offpkg backup"):
        confedit.restore(path)


def test_backup_prune_keeps_the_original(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(confedit, "MAX_BACKUPS", 3)
    path = tmp_path / ".condarc"
    path.write_text("original\n")
    for i in range(6):
        confedit.FileChange(path, path.read_text(), f"v{i}\n", "conda").apply()
    kept = confedit.backups(path)
    assert len(kept) == 3 and kept[0].read_text() == "original\n"


def test_diff_is_redacted() -> None:
    change = confedit.FileChange(Path("pip.conf"), "", "[global]\nindex-url = https://bob:Tok3nXYZ@h.example/simple\n",
                                 "pip")
    d = change.diff()
    assert "Tok3nXYZ" not in d and "+index-url = https://****@h.example/simple" in d


# --------------------------------------------------------------------------- pip's files and precedence


def _layout(tmp_path: Path) -> tuple[dict[str, str], dict[str, Path]]:
    home = tmp_path / "home"
    env = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
           "XDG_CONFIG_DIRS": str(tmp_path / "xdg")}
    paths = {"xdg": tmp_path / "xdg" / "pip" / "pip.conf", "legacy": home / ".pip" / "pip.conf",
             "user": home / ".config" / "pip" / "pip.conf", "site": tmp_path / "venv" / "pip.conf",
             "envfile": tmp_path / "env-pip.conf"}
    return env, paths


def test_pip_config_files_order(tmp_path: Path) -> None:
    env, p = _layout(tmp_path)
    files = conflookup.pip_config_files(env, prefix=str(tmp_path / "venv"))
    assert files == [("global", p["xdg"]), ("global", Path("/etc/pip.conf")), ("user", p["legacy"]),
                     ("user", p["user"]), ("site", p["site"])]
    p["envfile"].write_text("[global]\n")
    files = conflookup.pip_config_files({**env, "PIP_CONFIG_FILE": str(p["envfile"])}, prefix=str(tmp_path / "venv"))
    # An existing PIP_CONFIG_FILE turns the user files off and is the strongest file.
    assert [k for k, _ in files] == ["global", "global", "site", "env"]
    assert conflookup.pip_config_files({**env, "PIP_CONFIG_FILE": os.devnull}) == []


def test_pip_scope_paths(tmp_path: Path) -> None:
    env, p = _layout(tmp_path)
    assert conflookup.pip_scope_path("user", env) == p["user"]
    p["legacy"].parent.mkdir(parents=True)
    p["legacy"].write_text("[global]\n")
    assert conflookup.pip_scope_path("user", env) == p["legacy"]  # only the legacy file exists: edit it
    assert conflookup.pip_scope_path("global", env) == Path("/etc/pip.conf")
    assert conflookup.pip_scope_path("venv", {**env, "VIRTUAL_ENV": str(tmp_path / "venv")}) == p["site"]


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture(scope="module")
def venv_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv without pip of its own that borrows this Python's pip: its sys.prefix is ours."""
    root = tmp_path_factory.mktemp("pipvenv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(root)], check=True,
                   capture_output=True, timeout=120)
    return root / "bin" / "python"


def _pip_index(venv_python: Path, env: dict[str, str], tmp_path: Path) -> str:
    """The index real pip uses for `pip download` (its 'Looking in indexes' line)."""
    run_env = isolated_env(home=env["HOME"])
    run_env.pop("PIP_CONFIG_FILE")
    run_env.update(env)
    proc = subprocess.run([str(venv_python), "-m", "pip", "download", "--no-deps", "-d", str(tmp_path / "dl"),
                           "--retries", "0", "--timeout", "1", "nonexistent-offpkg-probe"],
                          env=run_env, capture_output=True, text=True, timeout=120)
    for line in (proc.stdout + proc.stderr).splitlines():
        if line.startswith("Looking in indexes:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(proc.stdout + proc.stderr)


def test_pip_precedence_matches_real_pip(tmp_path: Path, venv_python: Path) -> None:
    env, p = _layout(tmp_path)
    prefix = str(venv_python.parent.parent)
    site = Path(prefix) / "pip.conf"
    url = "http://127.0.0.1:9/{}".format
    _write(p["xdg"], f"[global]\nindex-url = {url('xdg')}\n")
    _write(p["legacy"], f"[global]\nindex-url = {url('legacy')}\n")
    _write(p["user"], f"[global]\nindex-url = {url('user')}\n")

    def both(extra: dict[str, str]) -> tuple[str, str]:
        e = {**env, **extra}
        ours = conflookup.pip_effective(e, prefix=prefix, command="download")[0]["index-url"]
        return ours.value, _pip_index(venv_python, e, tmp_path)

    ours, pips = both({})
    assert ours == pips == url("user")  # the XDG user file beats ~/.pip and the global files
    _write(site, f"[global]\nindex-url = {url('site')}\n")
    assert both({}) == (url("site"), url("site"))
    _write(p["envfile"], f"[global]\nindex-url = {url('envfile')}\n")
    assert both({"PIP_CONFIG_FILE": str(p["envfile"])}) == (url("envfile"), url("envfile"))
    # A command section in a weaker file beats [global] in a stronger one.
    _write(p["user"], f"[download]\nindex-url = {url('user-download')}\n")
    assert both({}) == (url("user-download"), url("user-download"))
    assert both({"PIP_INDEX_URL": url("var")}) == (url("var"), url("var"))
    settings_, _, _ = conflookup.pip_effective({**env, "PIP_INDEX_URL": url("var")}, prefix=prefix)
    assert settings_["index-url"].source == "env PIP_INDEX_URL"


# --------------------------------------------------------------------------- conda's files


def test_condarc_search_path_and_merge(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {"HOME": str(home), "CONDA_ROOT": str(tmp_path / "root"), "CONDA_PREFIX": str(tmp_path / "envs" / "ml")}
    path = conflookup.condarc_search_path(env)
    assert path.index(home / ".config" / "conda" / ".condarc") < path.index(home / ".condarc") \
        < path.index(tmp_path / "envs" / "ml" / ".condarc")
    assert conflookup.condarc_scope_path("user", env) == home / ".condarc"
    assert conflookup.condarc_scope_path("global", env) == tmp_path / "root" / ".condarc"
    assert conflookup.condarc_scope_path("venv", env) == tmp_path / "envs" / "ml" / ".condarc"
    _write(tmp_path / "root" / ".condarc", "channels:\n  - defaults\nshow_channel_urls: false\n"
                                           "custom_channels:\n  a: https://root/a\n  b: https://root/b\n")
    _write(home / ".condarc", "channels: [conda-forge, defaults]\nshow_channel_urls: true\n"
                              "custom_channels:\n  b: https://user:S3cr3tCh@home/b\n")
    _write(home / ".conda" / "condarc.d" / "x.yml", "channels:\n  - bioconda\n")
    got, files, problems = conflookup.conda_effective(env)
    assert problems == []
    assert got["channels"]["value"] == ["conda-forge", "defaults", "bioconda"]
    assert got["channels"]["sources"][0] == str(home / ".condarc")
    assert got["show_channel_urls"] == {"value": True, "sources": [str(home / ".condarc")]}
    assert got["custom_channels"]["value"] == {"a": "https://root/a", "b": "https://user:S3cr3tCh@home/b"}
    from offpkg.redact import redact_text

    assert "S3cr3tCh" not in redact_text(str(got))
    got, _, _ = conflookup.conda_effective({**env, "CONDA_CHANNELS": "x,y"})
    assert got["channels"] == {"value": ["x", "y"], "sources": ["env CONDA_CHANNELS"]}
