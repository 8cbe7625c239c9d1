#!/usr/bin/env python3
"""Smoke test of the asr stack, run inside the freshly installed environment.

    VENV/bin/python asr.smoke.py --expect-cuda 13.0     # or: --expect-cuda none (cpu build)

Standard library and the stack only; no network, nothing downloaded: the audio is
a synthetic tone written to a temporary WAV. Prints ONE JSON object on stdout
(everything else goes to stderr) and exits 0 when every check passes, 1 when any
fails, 2 on bad arguments.
"""

import argparse
import contextlib
import json
import os
import platform
import re
import sys
import tempfile
import time
import traceback

STACK = "asr"
FORMAT = 1
PACKAGES = [
    ("torch", "torch"),
    ("torchaudio", "torchaudio"),
    ("numpy", "numpy"),
    ("scipy", "scipy"),
    ("pyyaml", "yaml"),
    ("sentencepiece", "sentencepiece"),
    ("soundfile", "soundfile"),
    ("librosa", "librosa"),
    ("tensorboardX", "tensorboardX"),
    ("jieba", "jieba"),
    ("pypinyin", "pypinyin"),
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


def check_lockstep(torch, torchaudio):
    # torchaudio X.Y.Z goes with torch X.Y.Z (same local label: the same build)
    t, a = torch.__version__, torchaudio.__version__
    tl, al = t.partition("+")[2], a.partition("+")[2]
    if tl != al:
        raise AssertionError("torch %s and torchaudio %s come from different builds" % (t, a))
    return {"torch": t, "torchaudio": a}


def check_wav_fbank(np, sf, torch, torchaudio, tmp):
    sr = 16000
    t = np.arange(sr, dtype=np.float32) / sr
    wave = (0.3 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
    path = os.path.join(tmp, "tone.wav")
    sf.write(path, wave, sr, subtype="PCM_16")
    data, rate = sf.read(path, dtype="float32")
    assert rate == sr and data.shape == (sr,), (rate, data.shape)
    feats = torchaudio.compliance.kaldi.fbank(torch.from_numpy(data).unsqueeze(0) * 32768, num_mel_bins=80,
                                              frame_length=25, frame_shift=10, sample_frequency=sr)
    assert feats.shape[1] == 80 and feats.shape[0] > 90, tuple(feats.shape)
    assert torch.isfinite(feats).all()
    return {"frames": int(feats.shape[0]), "libsndfile": sf.__libsndfile_version__}


def check_librosa(np, librosa):
    sr = 16000
    y = (0.3 * np.sin(2 * np.pi * 440.0 * np.arange(sr) / sr)).astype(np.float32)
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=13)
    assert mfcc.shape[0] == 13 and np.isfinite(mfcc).all(), mfcc.shape
    return {"mfcc_frames": int(mfcc.shape[1])}


def check_ctc_step(torch):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(80, 64), torch.nn.ReLU(), torch.nn.Linear(64, 11))
    x = torch.randn(2, 50, 80)
    logp = model(x).log_softmax(-1).transpose(0, 1)  # (T, N, C)
    targets = torch.randint(1, 11, (2, 8))
    loss = torch.nn.CTCLoss(blank=0)(logp, targets, torch.full((2,), 50), torch.full((2,), 8))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss), loss
    return {"ctc_loss": round(float(loss.detach()), 4)}


def check_text(spm, jieba, pypinyin, yaml, tmp):
    corpus = os.path.join(tmp, "corpus.txt")
    with open(corpus, "w", encoding="utf-8") as f:
        for i in range(200):
            f.write("hello offline speech recognition number %d works\n" % i)
    prefix = os.path.join(tmp, "bpe")
    spm.SentencePieceTrainer.train(input=corpus, model_prefix=prefix, vocab_size=40, model_type="bpe",
                                   minloglevel=2)
    sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
    pieces = sp.encode("offline speech", out_type=str)
    assert pieces, pieces
    jieba.setLogLevel(60)
    words = jieba.lcut("语音识别离线部署")
    assert "".join(words) == "语音识别离线部署", words
    py = pypinyin.lazy_pinyin("语音")
    assert py == ["yu", "yin"], py
    conf = yaml.safe_load("encoder: conformer\nnum_blocks: 2\n")
    assert conf == {"encoder": "conformer", "num_blocks": 2}, conf
    return {"pieces": pieces, "jieba": words, "pinyin": py}


def check_tensorboard(tbx, tmp):
    w = tbx.SummaryWriter(logdir=os.path.join(tmp, "tb"))
    w.add_scalar("loss", 1.0, 0)
    w.close()
    files = os.listdir(os.path.join(tmp, "tb"))
    assert any(f.startswith("events.out.tfevents") for f in files), files
    return "wrote an event file"


def main(argv=None):
    ap = argparse.ArgumentParser(description="Smoke test of the %s stack (no network)." % STACK)
    ap.add_argument("--expect-cuda", required=True, type=parse_expect_cuda, metavar="X.Y|none",
                    help="the CUDA version torch must be built for (torch.version.cuda), or none for the cpu build")
    args = ap.parse_args(argv)

    real_stdout = sys.stdout
    start = time.perf_counter()
    checks = Checks()
    gpu_available = False
    torch_cuda = None
    with contextlib.redirect_stdout(sys.stderr), tempfile.TemporaryDirectory(prefix="offpkg-asr-") as tmp:
        os.environ.setdefault("NUMBA_CACHE_DIR", tmp)  # librosa's numba must not write beside the venv
        checks.import_all()
        m = checks.modules
        checks.run("torch_cuda_version", lambda: check_torch_cuda(m["torch"], args.expect_cuda), needs=["torch"])
        if "torch" in m:
            torch_cuda = m["torch"].version.cuda
            with contextlib.suppress(Exception):
                gpu_available = bool(m["torch"].cuda.is_available())
        checks.run("torch_torchaudio_lockstep", lambda: check_lockstep(m["torch"], m["torchaudio"]),
                   needs=["torch", "torchaudio"])
        checks.run("wav_io_kaldi_fbank", lambda: check_wav_fbank(m["numpy"], m["soundfile"], m["torch"],
                                                                  m["torchaudio"], tmp),
                   needs=["numpy", "soundfile", "torch", "torchaudio"])
        checks.run("librosa_mfcc", lambda: check_librosa(m["numpy"], m["librosa"]), needs=["numpy", "librosa"])
        checks.run("ctc_train_step", lambda: check_ctc_step(m["torch"]), needs=["torch"])
        checks.run("text_tools", lambda: check_text(m["sentencepiece"], m["jieba"], m["pypinyin"], m["yaml"], tmp),
                   needs=["sentencepiece", "jieba", "pypinyin", "yaml"])
        checks.run("tensorboardx_events", lambda: check_tensorboard(m["tensorboardX"], tmp), needs=["tensorboardX"])

    ok = all(r["ok"] for r in checks.results)
    report = {
        "smoke": STACK, "format": FORMAT, "ok": ok, "expect_cuda": args.expect_cuda, "torch_cuda": torch_cuda,
        "gpu_available": gpu_available, "python": platform.python_version(), "platform": platform.platform(),
        "versions": checks.versions, "checks": checks.results,
        "failed": [r["name"] for r in checks.results if not r["ok"]],
        "seconds": round(time.perf_counter() - start, 3),
    }
    real_stdout.write(json.dumps(report, sort_keys=True) + "\n")
    real_stdout.flush()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
