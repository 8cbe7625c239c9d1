#!/usr/bin/env python3
"""Smoke test of the gpu-ml stack, run inside the freshly installed environment.

    VENV/bin/python gpu-ml.smoke.py --expect-cuda 13.0     # or: --expect-cuda none (cpu build)

Uses the standard library and the stack only; needs no network and downloads
nothing (the tiny BERT is built from a config with random weights). Prints ONE
JSON object on stdout (everything else goes to stderr) and exits 0 when every
check passes, 1 when any fails, 2 on bad arguments.
"""

import argparse
import contextlib
import json
import os
import platform
import re
import sys
import time
import traceback
import warnings

# Nothing may reach for the network; keep plotting headless.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")

STACK = "gpu-ml"
FORMAT = 1
# (distribution, module) for every package of the stack.
PACKAGES = [
    ("torch", "torch"),
    ("torchaudio", "torchaudio"),
    ("transformers", "transformers"),
    ("tokenizers", "tokenizers"),
    ("sentencepiece", "sentencepiece"),
    ("scikit-learn", "sklearn"),
    ("pandas", "pandas"),
    ("numpy", "numpy"),
    ("matplotlib", "matplotlib"),
    ("tqdm", "tqdm"),
]


def parse_expect_cuda(value):
    """'13.0' -> '13.0'; 'none' / 'cpu' -> None."""
    v = value.strip().lower()
    if v in ("none", "cpu", "null"):
        return None
    if re.fullmatch(r"\d+\.\d+", v):
        return v
    raise argparse.ArgumentTypeError("expected a CUDA version like 13.0, or none for the cpu build; got %r" % value)


class Checks:
    def __init__(self):
        self.results = []
        self.modules = {}
        self.versions = {}

    def run(self, name, fn, needs=()):
        missing = [m for m in needs if m not in self.modules]
        if missing:
            self.results.append({"name": name, "ok": False, "skipped": True,
                                 "error": "needs %s, which did not import" % ", ".join(missing)})
            return
        start = time.perf_counter()
        rec = {"name": name}
        try:
            detail = fn()
            rec["ok"] = True
            if detail is not None:
                rec["detail"] = detail
        except Exception as exc:  # every failure is reported, none stops the others
            rec["ok"] = False
            rec["error"] = "%s: %s" % (type(exc).__name__, exc)
            rec["traceback"] = traceback.format_exc(limit=6)[-2000:]
        rec["seconds"] = round(time.perf_counter() - start, 3)
        self.results.append(rec)

    def skip(self, name, detail):
        self.results.append({"name": name, "ok": True, "skipped": True, "detail": detail})

    def import_all(self):
        import importlib

        for dist, mod in PACKAGES:
            def do(dist=dist, mod=mod):
                module = importlib.import_module(mod)
                self.modules[mod] = module
                version = getattr(module, "__version__", None)
                if version is None:
                    from importlib import metadata

                    version = metadata.version(dist)
                self.versions[dist] = str(version)
                return str(version)

            self.run("import:" + dist, do)


def check_torch_cuda(torch, expected):
    actual = torch.version.cuda
    if actual != expected:
        raise AssertionError("torch.version.cuda is %r, expected %r (torch %s)" % (actual, expected, torch.__version__))
    return {"torch": torch.__version__, "torch.version.cuda": actual}


def check_basics(np, pd, sklearn_lm):
    a = np.array([[3.0, 1.0], [1.0, 2.0]])
    x = np.linalg.solve(a, np.array([9.0, 8.0]))
    assert np.allclose(x, [2.0, 3.0]), x
    df = pd.DataFrame({"g": ["a", "b", "a"], "v": [1, 2, 3]})
    sums = df.groupby("g")["v"].sum().to_dict()
    assert sums == {"a": 4, "b": 2}, sums
    X = np.array([[0.0], [1.0], [2.0], [3.0]])
    y = np.array([0, 0, 1, 1])
    clf = sklearn_lm.LogisticRegression().fit(X, y)
    pred = clf.predict(np.array([[0.0], [3.0]])).tolist()
    assert pred == [0, 1], pred
    return "numpy solve, pandas groupby, scikit-learn LogisticRegression"


def check_plot(matplotlib):
    import io

    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1, 2], [0, 1, 4])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    data = buf.getvalue()
    assert data.startswith(b"\x89PNG"), data[:8]
    return {"backend": matplotlib.get_backend(), "png_bytes": len(data)}


def check_tokenizers(tokenizers):
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[UNK]": 0, "hello": 1, "offline": 2, "world": 3}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    ids = tok.encode("hello offline world again").ids
    assert ids == [1, 2, 3, 0], ids
    return {"ids": ids}


def check_sentencepiece(spm):
    # Constructing a processor exercises the compiled extension without a model file.
    sp = spm.SentencePieceProcessor()
    return {"processor": type(sp).__name__}


def check_tqdm(tqdm_mod):
    import io

    out = io.StringIO()
    total = sum(tqdm_mod.tqdm(range(100), file=out, mininterval=0))
    assert total == 4950, total
    return "iterated 100 items"


def check_bert(torch, transformers):
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=64, num_labels=2)
    model = transformers.BertForSequenceClassification(config)
    model.train()
    ids = torch.randint(0, config.vocab_size, (4, 16))
    mask = torch.ones_like(ids)
    labels = torch.tensor([0, 1, 0, 1])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = model.classifier.weight.detach().clone()
    out = model(input_ids=ids, attention_mask=mask, labels=labels)
    assert tuple(out.logits.shape) == (4, 2), tuple(out.logits.shape)
    loss = out.loss
    assert torch.isfinite(loss), loss
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads), "a parameter got no gradient"
    assert any(float(g.abs().sum()) > 0 for g in grads), "all gradients are zero"
    opt.step()
    opt.zero_grad()
    assert not torch.equal(before, model.classifier.weight.detach()), "the optimizer step changed nothing"
    loss2 = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    assert torch.isfinite(loss2), loss2
    params = sum(p.numel() for p in model.parameters())
    return {"parameters": params, "loss": round(float(loss.detach()), 4), "loss_after_step": round(float(loss2.detach()), 4)}


def check_torchaudio(torch, torchaudio):
    # Transforms only: no file decoding, so no FFmpeg (see the stack's notes).
    sr = 16000
    t = torch.arange(sr, dtype=torch.float32) / sr
    wave = torch.sin(2 * 3.141592653589793 * 440.0 * t).unsqueeze(0)
    mel = torchaudio.transforms.MelSpectrogram(sample_rate=sr, n_fft=400, hop_length=160, n_mels=40)(wave)
    assert tuple(mel.shape[:2]) == (1, 40), tuple(mel.shape)
    assert torch.isfinite(mel).all()
    return {"torchaudio": torchaudio.__version__, "mel_frames": int(mel.shape[-1])}


def check_gpu_matmul(torch):
    dev = torch.device("cuda")
    torch.manual_seed(0)
    a = torch.randn(512, 512)
    b = torch.randn(512, 512)
    c = (a.to(dev) @ b.to(dev))
    torch.cuda.synchronize()
    ref = a @ b
    err = float((c.cpu() - ref).abs().max() / ref.abs().max())
    assert err < 1e-2, "GPU result differs from CPU by %g" % err
    cap = torch.cuda.get_device_capability(0)
    return {"device": torch.cuda.get_device_name(0), "compute_cap": "%d.%d" % cap,
            "devices": torch.cuda.device_count(), "max_rel_err": err}


def main(argv=None):
    ap = argparse.ArgumentParser(description="Smoke test of the %s stack (no network)." % STACK)
    ap.add_argument("--expect-cuda", required=True, type=parse_expect_cuda, metavar="X.Y|none",
                    help="the CUDA version torch must be built for (torch.version.cuda), or none for the cpu build")
    args = ap.parse_args(argv)

    real_stdout = sys.stdout
    start = time.perf_counter()
    checks = Checks()
    gpu_available = False
    gpu = None
    torch_cuda = None
    cuda_warnings = []
    # Libraries that print on import must not spoil the one JSON object on stdout.
    with contextlib.redirect_stdout(sys.stderr):
        checks.import_all()
        m = checks.modules
        checks.run("torch_cuda_version", lambda: check_torch_cuda(m["torch"], args.expect_cuda), needs=["torch"])
        if "torch" in m:
            torch_cuda = m["torch"].version.cuda
        checks.run("numpy_pandas_sklearn", lambda: check_basics(m["numpy"], m["pandas"], _sk_linear()),
                   needs=["numpy", "pandas", "sklearn"])
        checks.run("matplotlib_png", lambda: check_plot(m["matplotlib"]), needs=["matplotlib"])
        checks.run("tokenizers_encode", lambda: check_tokenizers(m["tokenizers"]), needs=["tokenizers"])
        checks.run("sentencepiece_processor", lambda: check_sentencepiece(m["sentencepiece"]), needs=["sentencepiece"])
        checks.run("tqdm_progress", lambda: check_tqdm(m["tqdm"]), needs=["tqdm"])
        checks.run("bert_cpu_forward_backward", lambda: check_bert(m["torch"], m["transformers"]),
                   needs=["torch", "transformers"])
        checks.run("torchaudio_melspectrogram", lambda: check_torchaudio(m["torch"], m["torchaudio"]),
                   needs=["torch", "torchaudio"])
        if "torch" in m:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    gpu_available = bool(m["torch"].cuda.is_available())
                except Exception as exc:  # a broken CUDA runtime must be reported, not crash
                    cuda_warnings.append("%s: %s" % (type(exc).__name__, exc))
            cuda_warnings += [str(w.message)[:500] for w in caught]
            if gpu_available:
                checks.run("gpu_matmul", lambda: check_gpu_matmul(m["torch"]), needs=["torch"])
                gpu = next((r.get("detail") for r in checks.results if r["name"] == "gpu_matmul" and r["ok"]), None)
            else:
                checks.skip("gpu_matmul", "no GPU available to torch" + (": " + cuda_warnings[0] if cuda_warnings else ""))

    ok = all(r["ok"] for r in checks.results)
    report = {
        "smoke": STACK,
        "format": FORMAT,
        "ok": ok,
        "expect_cuda": args.expect_cuda,
        "torch_cuda": torch_cuda,
        "gpu_available": gpu_available,
        "gpu": gpu,
        "cuda_warnings": cuda_warnings,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": checks.versions,
        "checks": checks.results,
        "failed": [r["name"] for r in checks.results if not r["ok"]],
        "seconds": round(time.perf_counter() - start, 3),
    }
    real_stdout.write(json.dumps(report, sort_keys=True) + "\n")
    real_stdout.flush()
    return 0 if ok else 1


def _sk_linear():
    import sklearn.linear_model

    return sklearn.linear_model


if __name__ == "__main__":
    sys.exit(main())
