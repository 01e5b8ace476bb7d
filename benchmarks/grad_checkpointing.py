"""Peak memory of one training step with and without gradient checkpointing, through w2s's own loading path.

A random-init GPT-2 (default 12 layers, width 256, 1024 positions) is saved once with the built-in
tiny tokenizer; each setting then runs in a fresh process: `load_classifier` (as a finetune job
does), `loop.prepare` (which puts the model in training mode, so checkpointing runs), one warm-up
step on a short input (allocating gradients and Adam's state), then one step on a long input. The
figure is the step's peak memory above what the process held before it: peak RSS from
`getrusage` on a CPU (tracemalloc cannot see torch's allocations), `max_memory_allocated` on CUDA.

Usage: python benchmarks/grad_checkpointing.py [--layers 12] [--hidden 256] [--seq 1024] [--batch 4] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import json, resource, sys, time
import torch
from accelerate import Accelerator
from w2s_core.training.loop import prepare
from w2s_core.training.losses import make_loss
from w2s_core.training.models import load_classifier
from w2s_core.training.setup import Setup

path, ckpt, seq, batch, device = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
spec = {"name": "bench-gpt2", "path": path, "arch": "causal"}
model, tok = load_classifier(spec, dtype=torch.float32, lora=None, grad_checkpointing=ckpt)
torch.nn.init.normal_(model.head.weight, std=0.02)  # a zero head would send no gradient into the blocks
acc = Accelerator(cpu=device == "cpu")
module, opt = prepare(acc, Setup(model, None, {}, acc.device), {"lr": 1e-5, "weight_decay": 0.0})
loss_fn, gen = make_loss("xent", {}), torch.Generator().manual_seed(0)
vocab = model.backbone.config.vocab_size

def step(length):
    ids = torch.randint(0, vocab, (batch, length), generator=gen).to(acc.device)
    weak = torch.softmax(torch.randn(batch, 2, generator=gen), -1).to(acc.device)
    acc.backward(loss_fn(module(ids, torch.ones_like(ids)), weak, 0.0))
    opt.step()
    opt.zero_grad()

def peak():
    if acc.device.type == "cuda":
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

step(8)
if acc.device.type == "cuda":
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
else:
    before = peak()
start = time.perf_counter()
step(seq)
seconds = time.perf_counter() - start
print(json.dumps({"before": before, "peak": peak(), "seconds": seconds}))
"""


def save_model(dest: Path, layers: int, hidden: int, heads: int, positions: int) -> None:
    from transformers import GPT2Config, GPT2Model

    from w2s_core.spec.models import tiny_vocab
    from w2s_core.training.tiny import _tiny_tokenizer

    vocab = tiny_vocab()
    config = GPT2Config(
        vocab_size=len(vocab),
        n_embd=hidden,
        n_layer=layers,
        n_head=heads,
        n_positions=positions,
        bos_token_id=vocab["[BOS]"],
        eos_token_id=vocab["[EOS]"],
        pad_token_id=vocab["[PAD]"],
    )
    GPT2Model(config).save_pretrained(dest)
    _tiny_tokenizer(vocab, causal=True).save_pretrained(dest)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="w2s-ckpt-") as tmp:
        save_model(Path(tmp), args.layers, args.hidden, args.heads, args.seq)
        env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
        print(
            f"GPT-2 random init: {args.layers} layers, width {args.hidden}, batch {args.batch} x {args.seq} tokens, "
            f"{args.device}"
        )
        results = {}
        for ckpt in (False, True):
            cmd = [sys.executable, "-c", CHILD, tmp, str(int(ckpt)), str(args.seq), str(args.batch), args.device]
            done = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if done.returncode:
                sys.exit(done.stderr[-3000:])
            r = json.loads(done.stdout.strip().splitlines()[-1])
            results[ckpt] = r
            print(
                f"checkpointing {'on ' if ckpt else 'off'}: step peak {(r['peak'] - r['before']) / 2**20:8.0f} MiB "
                f"above {r['before'] / 2**20:6.0f} MiB held before it, {r['seconds']:.1f} s"
            )
        off, on = ((results[c]["peak"] - results[c]["before"]) for c in (False, True))
        print(
            f"checkpointing saves {(off - on) / 2**20:.0f} MiB of the step's peak ({1 - on / off:.0%}), "
            f"at {results[True]['seconds'] / results[False]['seconds']:.2f}x the step time"
        )


if __name__ == "__main__":
    main()
