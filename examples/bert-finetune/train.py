"""A smoke test for a BERT fine-tuning environment: no downloads, no dataset, seconds to run.

Builds a tiny BERT (2 layers, hidden size 64) from a config with random weights,
fine-tunes it for a few steps on random token sequences with two labels, and
checks that the loss goes down. It exercises what a real fine-tuning run needs from
the environment: torch (and CUDA when there is a GPU), transformers' BERT, the
optimizer, autograd, mixed precision on GPU, and saving/loading with safetensors.

    python train.py            # GPU if torch sees one, else CPU
    python train.py --cpu      # force CPU
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

# Never reach the Hugging Face Hub: everything here is built locally.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
from transformers import BertConfig, BertForSequenceClassification  # noqa: E402


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu", action="store_true", help="run on the CPU even if a GPU is available")
    ap.add_argument("--steps", type=int, default=30)
    args = ap.parse_args(argv)

    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    print(f"torch {torch.__version__} (CUDA build {torch.version.cuda or 'none'}), device: {device}")
    if device.type == "cuda":
        print(f"GPU: {torch.cuda.get_device_name(0)}, capability {torch.cuda.get_device_capability(0)}")

    torch.manual_seed(0)
    config = BertConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=128, max_position_embeddings=64, num_labels=2)
    model = BertForSequenceClassification(config).to(device)
    print(f"model: tiny BERT, {sum(p.numel() for p in model.parameters()):,} parameters (random weights)")

    # A learnable toy task: the label is whether token 7 appears in the sequence.
    n, seq = 256, 32
    input_ids = torch.randint(8, config.vocab_size, (n, seq))
    labels = torch.randint(0, 2, (n,))
    input_ids[labels == 1, torch.randint(1, seq, (int(labels.sum()),))] = 7
    input_ids, labels = input_ids.to(device), labels.to(device)
    attention_mask = torch.ones_like(input_ids)

    optim = torch.optim.AdamW(model.parameters(), lr=1e-3)
    use_amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    model.train()
    t0 = time.perf_counter()
    losses = []
    for step in range(args.steps):
        idx = torch.randint(0, n, (32,), device=device)
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
            out = model(input_ids=input_ids[idx], attention_mask=attention_mask[idx], labels=labels[idx])
        optim.zero_grad(set_to_none=True)
        scaler.scale(out.loss).backward()
        scaler.step(optim)
        scaler.update()
        losses.append(out.loss.item())
        if step % 10 == 0 or step == args.steps - 1:
            print(f"step {step:3d}  loss {losses[-1]:.4f}")
    seconds = time.perf_counter() - t0

    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    print(f"{args.steps} steps in {seconds:.2f} s; mean loss {first:.4f} -> {last:.4f}")

    # Save and load back (safetensors), and check the reloaded model gives the same logits.
    model.eval()
    with tempfile.TemporaryDirectory() as d:
        model.save_pretrained(d)
        again = BertForSequenceClassification.from_pretrained(d, local_files_only=True).to(device).eval()
        with torch.no_grad():
            a = model(input_ids=input_ids[:4], attention_mask=attention_mask[:4]).logits
            b = again(input_ids=input_ids[:4], attention_mask=attention_mask[:4]).logits
        same = torch.allclose(a, b, atol=1e-5)
        print(f"saved to {sorted(os.listdir(d))}, reloaded: {'identical' if same else 'DIFFERENT'}")

    if not (last < first and same):
        print("FAILED: the loss did not go down or the reloaded model differs", file=sys.stderr)
        return 1
    print("ok: this environment can fine-tune BERT")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
