"""offpkg's configuration layers with a temporary HOME / XDG_CONFIG_HOME / working directory,
and `offpkg config show`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from offpkg import config as config_mod
from offpkg.cli.commands.config import cli
from offpkg.errors import InputError


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.delenv("OFFPKG_CACHE_DIR", raising=False)
    return {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults(env: dict[str, str], tmp_path: Path) -> None:
    c = config_mod.load(tmp_path, env)
    assert c.get("backend") == "auto" and c.get("cuda") == "auto" and c.get("index_url") is None
    assert c.get("extra_index_urls") == [] and c.get("mirrors") == {}
    assert c.source("backend") == "default" and c.files == [] and c.problems == []
    assert c.get("cache_dir").endswith("offpkg")
    assert [k for k, _, _ in c.items_with_sources()] == list(config_mod.KEYS)
    with pytest.raises(KeyError):
        c.get("nope")


def test_layers_in_order(env: dict[str, str], tmp_path: Path) -> None:
    user = write(Path(env["XDG_CONFIG_HOME"]) / "offpkg" / "config.toml",
                 'mirror = "tuna"\nbackend = "pip"\ncuda = "cu118"\n'
                 '[mirrors]\ncorp = "https://nexus.corp/simple"\n')
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    project = write(repo / "pyproject.toml", '[project]\nname = "x"\n[tool.offpkg]\nbackend = "uv"\n'
                                             'target = "targets/gpu.json"\n'
                                             '[tool.offpkg.mirrors]\nlab = {url = "https://lab/simple"}\n')
    sub = repo / "src" / "pkg"
    sub.mkdir(parents=True)
    c = config_mod.load(sub, {**env, "OFFPKG_CUDA": "cu126", "OFFPKG_EXTRA_INDEX_URLS": "https://a/simple https://b/simple"},
                        cli={"mirror": "aliyun", "index_url": None})
    assert (c.get("mirror"), c.source("mirror")) == ("aliyun", "command line")
    assert (c.get("backend"), c.source("backend")) == ("uv", f"{project} [tool.offpkg]")
    assert (c.get("cuda"), c.source("cuda")) == ("cu126", "env OFFPKG_CUDA")
    assert c.get("extra_index_urls") == ["https://a/simple", "https://b/simple"]
    # Relative paths in a project file are relative to that file.
    assert c.get("target") == str(repo / "targets" / "gpu.json")
    # mirrors merge across layers, name by name.
    assert set(c.get("mirrors")) == {"corp", "lab"}
    assert c.source("mirrors") == f"{user} + {project} [tool.offpkg]"
    assert c.files == [str(user), f"{project} [tool.offpkg]"]
    assert c.source("index_url") == "default"


def test_offpkg_toml_wins_and_walk_stops_at_repo_root(env: dict[str, str], tmp_path: Path) -> None:
    write(tmp_path / "offpkg.toml", 'backend = "pip"\n')  # above the repository: not used
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    assert config_mod.load(repo, env).source("backend") == "default"
    write(repo / "pyproject.toml", '[tool.offpkg]\nbackend = "uv"\n')
    write(repo / "offpkg.toml", 'backend = "pip"\n')
    c = config_mod.load(repo, env)
    assert (c.get("backend"), c.source("backend")) == ("pip", str(repo / "offpkg.toml"))


def test_offpkg_config_env_points_at_the_user_file(env: dict[str, str], tmp_path: Path) -> None:
    f = write(tmp_path / "elsewhere.toml", 'index_url = "https://idx.example/simple"\n')
    c = config_mod.load(tmp_path, {**env, "OFFPKG_CONFIG": str(f)})
    assert c.source("index_url") == str(f)
    with pytest.raises(InputError, match="OFFPKG_CONFIG"):
        config_mod.load(tmp_path, {**env, "OFFPKG_CONFIG": str(tmp_path / "missing.toml")})


def test_unknown_keys_are_warnings_bad_files_and_values_are_errors(env: dict[str, str], tmp_path: Path) -> None:
    write(tmp_path / "offpkg.toml", 'mirorr = "tuna"\nbackend = "pip"\n')
    c = config_mod.load(tmp_path, env)
    assert c.get("backend") == "pip"
    assert len(c.problems) == 1 and "'mirorr'" in c.problems[0] and "did you mean 'mirror'" in c.problems[0]
    write(tmp_path / "offpkg.toml", 'backend = "pip"\nmirror = \n')
    with pytest.raises(InputError) as e:
        config_mod.load(tmp_path, env)
    assert "offpkg.toml" in e.value.message and "line 2" in e.value.message
    write(tmp_path / "offpkg.toml", 'backend = "conda"\n')
    with pytest.raises(InputError, match="backend must be one of auto, uv, pip"):
        config_mod.load(tmp_path, env)
    write(tmp_path / "offpkg.toml", 'cuda = "cuda12"\n')
    with pytest.raises(InputError, match="cuda"):
        config_mod.load(tmp_path, env)
    write(tmp_path / "offpkg.toml", '[mirrors]\nx = {url = "ftp://a"}\n')
    with pytest.raises(InputError, match="mirrors.x.url"):
        config_mod.load(tmp_path, env)
    (tmp_path / "offpkg.toml").unlink()
    with pytest.raises(InputError, match="OFFPKG_BACKEND"):
        config_mod.load(tmp_path, {**env, "OFFPKG_BACKEND": "yarn"})


def test_config_show(env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token = "zz-T0ken-998877"
    write(tmp_path / "offpkg.toml", f'index_url = "https://ci:{token}@nexus.corp/simple"\nbogus = 1\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OFFPKG_BACKEND", "uv")
    result = CliRunner().invoke(cli, ["show", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["command"] == "config show" and data["schema_version"] == 1
    assert data["config"]["backend"] == {"value": "uv", "source": "env OFFPKG_BACKEND"}
    assert data["config"]["index_url"] == {"value": "https://****@nexus.corp/simple",
                                           "source": str(tmp_path / "offpkg.toml")}
    assert data["problems"] and "bogus" in result.stderr
    text = CliRunner().invoke(cli, ["show"], catch_exceptions=False)
    assert "env OFFPKG_BACKEND" in text.stdout and "nexus.corp" in text.stdout
    for r in (result, text):
        assert token not in r.stdout and token not in r.stderr
