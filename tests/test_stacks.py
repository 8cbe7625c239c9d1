"""Built-in stacks: loading, the `offpkg stack` commands and the smoke scripts' calling convention."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from offpkg import stacks
from offpkg.cli.commands.stack import cli as stack_cli
from offpkg.errors import InputError

GPU_ML = ["torch", "torchaudio", "transformers", "tokenizers", "sentencepiece", "scikit-learn", "pandas", "numpy",
          "matplotlib", "tqdm"]


def test_builtin_stacks_load() -> None:
    by_name = {s.name: s for s in stacks.list_stacks()}
    assert {"gpu-ml", "cpu-small"} <= set(by_name)
    gpu = by_name["gpu-ml"]
    assert list(gpu.requirements) == GPU_ML
    assert gpu.needs_cuda and gpu.smoke_name == "gpu-ml.smoke.py"
    assert "torchaudio" in gpu.notes  # the decision is written down
    small = by_name["cpu-small"]
    assert not small.needs_cuda and "torch" not in small.requirements
    assert set(small.requirements) == {"requests", "numpy", "tqdm", "packaging"}
    for s in by_name.values():
        compile(s.smoke_text(), s.smoke_name, "exec")  # the scripts are valid Python
        assert s.description


def test_get_stack_and_unknown_names() -> None:
    assert stacks.get_stack("GPU-ML").name == "gpu-ml"
    with pytest.raises(InputError) as ei:
        stacks.get_stack("gpu-mlx")
    assert "gpu-mlx" in ei.value.message
    assert "gpu-ml" in ei.value.hint and "cpu-small" in ei.value.hint


def test_write_smoke_and_argv(tmp_path: Path) -> None:
    s = stacks.get_stack("cpu-small")
    path = s.write_smoke(tmp_path)
    assert path == tmp_path / "cpu-small.smoke.py" and path.read_text() == s.smoke_text()
    assert [p.name for p in tmp_path.iterdir()] == ["cpu-small.smoke.py"]  # no temp file left behind
    assert s.smoke_argv("/v/bin/python", path, None) == ["/v/bin/python", str(path), "--expect-cuda", "none"]
    assert s.smoke_argv("py", "x.py", "13.0")[-2:] == ["--expect-cuda", "13.0"]


@pytest.mark.parametrize("text, words", [
    ("name = ", "not valid TOML"),
    ('description = "x"\nrequirements = []\nsmoke = "a.py"', "`name` is missing"),
    ('name = "Bad Name"\ndescription = "x"\nrequirements = []\nsmoke = "a.py"', "lowercase"),
    ('name = "a"\ndescription = "x"\nrequirements = ["torch >>> 2"]\nsmoke = "a.py"', "PEP 508"),
    ('name = "a"\ndescription = "x"\nrequirements = "torch"\nsmoke = "a.py"', "must be a list"),
    ('name = "a"\ndescription = "x"\nrequirements = []\nsmoke = "../evil.py"', "file name"),
    ('name = "a"\ndescription = "x"\nrequirements = []\nsmoke = "a.py"\ntorch = "yes"', "must be a bool"),
])
def test_malformed_stack_files(text: str, words: str) -> None:
    with pytest.raises(InputError) as ei:
        stacks._parse(text, "stacks/a.toml")
    assert words in ei.value.message and "stacks/a.toml" in ei.value.message


def test_stack_commands() -> None:
    res = CliRunner().invoke(stack_cli, ["list", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["command"] == "stack list"
    assert {s["name"]: s["needs_cuda"] for s in doc["stacks"]}["gpu-ml"] is True
    res = CliRunner().invoke(stack_cli, ["show", "gpu-ml", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["stack"]["requirements"] == GPU_ML
    res = CliRunner().invoke(stack_cli, ["show", "gpu-ml"])
    assert res.exit_code == 0 and "transformers" in res.stdout and "gpu-ml.smoke.py" in res.stdout
    res = CliRunner().invoke(stack_cli, ["list"])
    assert res.exit_code == 0 and "cpu-small" in res.stdout
    res = CliRunner().invoke(stack_cli, ["show", "nope"])
    assert isinstance(res.exception, InputError)


# ------------------------------------------------------------------ smoke scripts, run for real

def _run_smoke(name: str, *args: str, python: str = sys.executable, cwd: Path) -> subprocess.CompletedProcess[str]:
    script = stacks.get_stack(name).write_smoke(cwd)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["HOME"] = str(cwd)
    return subprocess.run([python, str(script), *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=300)


def _have(*modules: str) -> list[str]:
    return [m for m in modules if importlib.util.find_spec(m) is None]


def test_cpu_small_smoke_runs_here(tmp_path: Path) -> None:
    out = _run_smoke("cpu-small", "--expect-cuda", "none", cwd=tmp_path)
    doc = json.loads(out.stdout)  # exactly one JSON object on stdout, whatever happens
    assert doc["smoke"] == "cpu-small" and doc["expect_cuda"] is None and doc["gpu_available"] is False
    missing = _have("requests", "numpy", "tqdm", "packaging")
    if not missing:
        assert out.returncode == 0 and doc["ok"] and doc["failed"] == [], out.stdout
        assert {c["name"] for c in doc["checks"]} >= {"numpy_numeric", "tqdm_progress", "requests_prepare"}
    else:
        # this interpreter lacks part of the stack: the script must say which, and fail
        assert out.returncode == 1 and not doc["ok"]
        assert {f"import:{m}" for m in missing} <= set(doc["failed"])
    assert doc["versions"].get("numpy") or "numpy" in missing


def test_cpu_small_smoke_arguments(tmp_path: Path) -> None:
    out = _run_smoke("cpu-small", "--expect-cuda", "13.0", cwd=tmp_path)
    doc = json.loads(out.stdout)
    assert out.returncode == 1 and "expect_cuda" in doc["failed"]
    out = _run_smoke("cpu-small", "--expect-cuda", "thirteen", cwd=tmp_path)
    assert out.returncode == 2 and "expected a CUDA version" in out.stderr and out.stdout == ""


def test_gpu_ml_smoke_arguments(tmp_path: Path) -> None:
    out = _run_smoke("gpu-ml", cwd=tmp_path)
    assert out.returncode == 2 and "--expect-cuda" in out.stderr  # the expectation is required
    out = _run_smoke("gpu-ml", "--expect-cuda", "13", cwd=tmp_path)
    assert out.returncode == 2 and out.stdout == ""
    out = _run_smoke("gpu-ml", "--expect-cuda", "13.0", cwd=tmp_path)
    doc = json.loads(out.stdout)
    assert doc["smoke"] == "gpu-ml" and doc["expect_cuda"] == "13.0"
    names = [c["name"] for c in doc["checks"]]
    assert names[:10] == [f"import:{d}" for d in ["torch", "torchaudio", "transformers", "tokenizers",
                                                    "sentencepiece", "scikit-learn", "pandas", "numpy", "matplotlib",
                                                    "tqdm"]]
    assert "torchaudio_melspectrogram" in names
    assert "bert_cpu_forward_backward" in names and "torch_cuda_version" in names
    if _have("torch"):
        # no torch here: the run fails and says so, every dependent check too
        assert out.returncode == 1 and "import:torch" in doc["failed"]
        assert "bert_cpu_forward_backward" in doc["failed"] and doc["torch_cuda"] is None
    else:
        import torch

        assert ("torch_cuda_version" in doc["failed"]) == (torch.version.cuda != "13.0")


def test_asr_stack_and_smoke_arguments(tmp_path: Path) -> None:
    st = stacks.get_stack("asr")
    assert st.needs_cuda and {"torch", "torchaudio", "jieba", "soundfile"} <= set(st.requirements)
    out = _run_smoke("asr", cwd=tmp_path)
    assert out.returncode == 2 and "--expect-cuda" in out.stderr
    out = _run_smoke("asr", "--expect-cuda", "none", cwd=tmp_path)
    doc = json.loads(out.stdout)  # one JSON object, whatever this interpreter lacks
    assert doc["smoke"] == "asr" and doc["expect_cuda"] is None
    names = [c["name"] for c in doc["checks"]]
    assert names[:2] == ["import:torch", "import:torchaudio"]
    assert {"torch_torchaudio_lockstep", "wav_io_kaldi_fbank", "ctc_train_step", "text_tools"} <= set(names)
    if _have("torch", "torchaudio", "soundfile", "jieba"):
        assert out.returncode == 1 and "import:torch" in doc["failed"] or "import:torchaudio" in doc["failed"] \
            or "import:soundfile" in doc["failed"] or "import:jieba" in doc["failed"]


def test_gpu_ml_smoke_full(tmp_path: Path) -> None:
    """The real stack: this interpreter if it has it, or GPU_ML_SMOKE_PYTHON (a venv with gpu-ml installed)."""
    python = os.environ.get("GPU_ML_SMOKE_PYTHON") or sys.executable
    probe = subprocess.run([python, "-c", "import torch, transformers, tokenizers, sentencepiece, sklearn, pandas, "
                                          "numpy, matplotlib, tqdm; print(torch.version.cuda or 'none')"],
                           capture_output=True, text=True, timeout=120)
    if probe.returncode != 0:
        pytest.skip(f"{python} lacks the gpu-ml stack (set GPU_ML_SMOKE_PYTHON to a venv that has it)")
    expect = probe.stdout.strip()
    try:  # with no network at all where the kernel allows it: the smoke test must not need one
        from helpers import unshare_argv

        prefix = list(unshare_argv() or ())
    except ImportError:
        prefix = []
    script = stacks.get_stack("gpu-ml").write_smoke(tmp_path)
    out = subprocess.run([*prefix, python, str(script), "--expect-cuda", expect], capture_output=True, text=True,
                         cwd=tmp_path, env=dict(os.environ, HOME=str(tmp_path)), timeout=300)
    doc = json.loads(out.stdout)
    assert out.returncode == 0 and doc["ok"], doc["failed"]
    bert = next(c for c in doc["checks"] if c["name"] == "bert_cpu_forward_backward")
    assert bert["ok"] and bert["detail"]["parameters"] > 0
    assert doc["gpu_available"] == any(c["name"] == "gpu_matmul" and not c.get("skipped") for c in doc["checks"])
