"""How fast is the w2s trainer? Side by side with a loop of the reference's semantics, in one run.

Each side trains the same random-init model on the same examples (one epoch, seed 0, effective
batch 32, Adam, soft-label cross-entropy) in a fresh process, after one untimed warm-up pass:
- reference: `benchmarks/reference_loop.py` (openai/weak-to-strong `train.py` semantics, minibatch
  1, `pad_sequence` with id 0, stacked logits, `loss.item()` every batch; its docstring says what we
  follow and where we differ);
- w2s: the real trainer (`w2s_core.training`: `build_finetune`, `prepare`, `Loop`, `train_loop`)
  at its defaults, minibatch `--minibatch` (32: one pass per step), events written to a file;
- w2s+group: the same with `[train] group_by_length = true` (opt-in: it changes which examples
  share a step);
- w2s, no events: the w2s side with the EventWriter writing nowhere (`EventWriter(None)`).
Printed per side: examples/s, tokens/s (real tokens, padding left out), the ratio to the
reference, the share of padded positions, peak memory (CPU: the process's RSS high-water,
`ru_maxrss`, model loading included; CUDA: `max_memory_allocated` of the timed loop) and MFU =
6 x N x tokens/s / peak, N the parameters less the embedding tables (Kaplan's 6N: a classifier
computes no LM head, and an embedding lookup is no matmul; attention's own FLOPs left out), the
peak measured in this run by a large matmul in the training dtype (fp32 on CPU, bf16 on CUDA).

Item 6 of issue 11, the monitoring overhead: the w2s side times, per optimiser step, building its
event (`loop.progress_event`, which reads the step's loss and accuracy from the device: the one
host sync per step) and writing it (`EventWriter.emit`: JSON, write, flush); the run without
events gives the end-to-end difference (within run-to-run noise); and the store ingest of the
w2s side's events.jsonl (`Store.ingest_events`, as the supervisor runs it) is timed in one call
and with one call per line (a supervisor tick after every step, the worst case), each as a share
of the training time. GPU sampling is the supervisor's (`w2s_core.supervision`), not timed here.

Models: CPU, a GPT-2-style model (8 layers, width 512, ~25M parameters besides its ~10M
embeddings) on the movie snippets (`w2s assets install demo`; real review sentences, labels =
rating > 0) and on longer synthetic inputs (words drawn from the snippets' vocabulary, 96-256
long). CUDA (`--device cuda`): random-init configs of gpt2-medium, gpt2-large and a
Qwen2-0.5B-like model, bf16 autocast on fp32 weights (the trainer's dtype "auto"), on synthetic
inputs of 128-512 words. The tokenizer is a word-level one over the snippets' vocabulary (no
download needed), so a token is a word or a punctuation mark; the GPU configs keep their real
vocabulary sizes. Inputs are never truncated (max_length 1024).

Usage: python benchmarks/trainer_speed.py [--device cpu|cuda] [--configs NAME:DATA:N,...]
       [--minibatch 32] [--sides reference,w2s,w2s+group,w2s-noevents] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
MAX_LENGTH = 1024
MODELS = {
    "gpt2-35m": {"model_type": "gpt2", "n_embd": 512, "n_layer": 8, "n_head": 8},
    "gpt2-medium": {"model_type": "gpt2", "n_embd": 1024, "n_layer": 24, "n_head": 16, "vocab_size": 50257},
    "gpt2-large": {"model_type": "gpt2", "n_embd": 1280, "n_layer": 36, "n_head": 20, "vocab_size": 50257},
    "qwen2-0.5b": {
        "model_type": "qwen2",
        "hidden_size": 896,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
        "intermediate_size": 4864,
        "vocab_size": 151936,
        "tie_word_embeddings": True,
    },
}
DATA = {"snippets": None, "long": (96, 256), "long-gpu": (128, 512)}
DEFAULTS = {
    "cpu": "gpt2-35m:snippets:320,gpt2-35m:long:64",
    "cuda": "gpt2-medium:snippets:512,gpt2-medium:long-gpu:512,gpt2-large:long-gpu:256,qwen2-0.5b:long-gpu:256",
}
SIDES = ("reference", "w2s", "w2s+group", "w2s-noevents")


# --- data and model (the parent) ------------------------------------------------------------


def snippets() -> tuple[list[str], list[int]]:
    from w2s_core.assets import movie_snippets_file

    rows = [line.split("\t") for line in movie_snippets_file().read_text(errors="replace").splitlines()]
    rows = [r for r in rows if len(r) >= 3 and r[2].strip()]
    return [r[2].strip() for r in rows], [int(float(r[1]) > 0) for r in rows]


def words_of(text: str) -> list[str]:
    from tokenizers import pre_tokenizers

    return [w for w, _ in pre_tokenizers.Whitespace().pre_tokenize_str(text.lower())]


def examples(data: str, n: int, corpus: list[str], labels: list[int]) -> tuple[list[str], list[int]]:
    """n texts and labels: the snippets (a seeded sample), or synthetic texts of the snippets' words."""
    rng = random.Random(0)
    if DATA[data] is None:
        rows = rng.sample(range(len(corpus)), min(n, len(corpus)))
        return [corpus[i] for i in rows], [labels[i] for i in rows]
    lo, hi = DATA[data]
    vocab = sorted({w for t in corpus[:2000] for w in words_of(t)})
    texts = [" ".join(rng.choice(vocab) for _ in range(rng.randint(lo, hi))) for _ in range(n)]
    return texts, [rng.randint(0, 1) for _ in range(n)]


def tokenizer(corpus: list[str]):
    from w2s_core.training.tiny import word_level_tokenizer

    words = sorted({w for t in corpus for w in words_of(t)})
    tok = word_level_tokenizer({"[PAD]": 0, "[UNK]": 1, **{w: i + 2 for i, w in enumerate(words)}}, pad_token="[PAD]")
    tok.model_max_length = MAX_LENGTH
    return tok


def make_model(folder: Path, name: str, tok, device: str) -> None:
    """A random-init model (seed 0, dropout off) and the tokenizer, saved for `from_pretrained`."""
    import torch
    from transformers import AutoConfig, AutoModel

    settings = dict(MODELS[name])
    kind = settings.pop("model_type")
    settings["vocab_size"] = max(settings.get("vocab_size", 0), len(tok))
    config = AutoConfig.for_model(kind, **settings)
    for key, value in config.to_dict().items():
        if ("dropout" in key or "pdrop" in key) and isinstance(value, float):
            setattr(config, key, 0.0)
    for key in ("bos_token_id", "eos_token_id"):  # GPT-2's 50256 is outside a smaller vocabulary
        if isinstance(getattr(config, key, None), int) and getattr(config, key) >= config.vocab_size:
            setattr(config, key, None)
    for key in ("n_positions", "max_position_embeddings"):
        if hasattr(config, key):
            setattr(config, key, max(getattr(config, key), MAX_LENGTH))
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModel.from_config(config)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)


def peak_flops(device: str) -> tuple[float, str]:
    """FLOP/s of a large square matmul in the training dtype, best of a few timed rounds."""
    import torch

    cuda = device == "cuda"
    n, dtype = (8192, torch.bfloat16) if cuda else (2048, torch.float32)
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    best = float("inf")
    for _ in range(5):
        sync(device)
        t = time.perf_counter()
        for _ in range(10 if cuda else 2):
            a @ b
        sync(device)
        best = min(best, (time.perf_counter() - t) / (10 if cuda else 2))
    return 2 * n**3 / best, f"{str(dtype).split('.')[-1]} {n}^3"


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


# --- the sides (each in its own process) ----------------------------------------------------


def non_embedding_params(module) -> int:
    import torch

    embedded = sum(p.numel() for m in module.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters())
    return sum(p.numel() for p in module.parameters()) - embedded


def peak_memory_mb(device: str) -> float:
    import resource

    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reference_side(work: Path, device: str, attention: str) -> dict:
    import torch
    from reference_loop import TransformerWithHead, train_reference
    from transformers import AutoModel

    data = json.loads((work / "data.json").read_text())
    dev = torch.device(device)
    body = AutoModel.from_pretrained(work / "model", dtype=torch.float32, attn_implementation=attention)
    model = TransformerWithHead(body, body.config.hidden_size).to(dev)
    cuda = device == "cuda"
    longest = max(data["ids"], key=len)
    with torch.autocast(device, dtype=torch.bfloat16, enabled=cuda):  # warm-up: kernels, allocator
        model(torch.tensor([longest], device=dev)).float().sum().backward()
    model.zero_grad(set_to_none=True)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    sync(device)
    t = time.perf_counter()
    soft = [[1.0 - y, float(y)] for y in data["labels"]]
    out = train_reference(model, data["ids"], soft, dev, autocast=cuda)
    sync(device)
    return {**out, "seconds": time.perf_counter() - t, "minibatch": 1, "n_params": non_embedding_params(body)}


def w2s_job(work: Path, minibatch: int, group: bool) -> dict:
    train = {
        "mode": "finetune",
        "epochs": 1,
        "lr": 5e-5,
        "batch_size": 32,
        "minibatch_size": minibatch,
        "max_length": MAX_LENGTH,
        "schedule": "cosine",
        "lr_warmup_frac": 0.0,
        "weight_decay": 0.0,
        "lora": False,
        "eval_every": 0,
        "group_by_length": group,
    }
    model = {"name": "bench", "path": str(work / "model")}
    return {"model": model, "data": {}, "train": train, "seed": 0, "loss": {"name": "xent", "params": {}}}


def w2s_side(work: Path, device: str, side: str, minibatch: int) -> dict:
    import torch
    from accelerate import Accelerator

    from w2s_core.jobdir import EventWriter
    from w2s_core.training import loop as L
    from w2s_core.training.evaluate import forward
    from w2s_core.training.losses import make_loss
    from w2s_core.training.setup import build_finetune

    data = json.loads((work / "data.json").read_text())
    job = w2s_job(work, minibatch, side == "w2s+group")
    acc = Accelerator(cpu=device == "cpu")
    acc.gradient_accumulation_steps = L.step_shape(job["train"], acc.num_processes)[1]
    setup = build_finetune(job, {"train": data["texts"][:1]}, acc.device, 2)
    setup.inputs = {"train": data["ids"]}  # the very ids the reference side reads
    module, opt = L.prepare(acc, setup, job["train"])
    counts = {"padded_tokens": 0, "event_s": 0.0, "emit_s": 0.0}
    warm = sorted(data["ids"], key=len)[-minibatch:]  # warm-up: kernels, allocator
    forward(setup, module, warm).float().sum().backward()
    module.zero_grad(set_to_none=True)
    inner_batch, inner_event = setup.batch, L.progress_event

    def batch(items):
        counts["padded_tokens"] += len(items) * max(map(len, items))
        return inner_batch(items)

    def progress_event(*args):
        t = time.perf_counter()
        event = inner_event(*args)
        counts["event_s"] += time.perf_counter() - t
        return event

    setup.batch, L.progress_event = batch, progress_event
    events = EventWriter(work / f"{side}.events.jsonl" if side != "w2s-noevents" else None)
    inner_emit = events.emit

    def emit(event):
        t = time.perf_counter()
        inner_emit(event)
        counts["emit_s"] += time.perf_counter() - t

    events.emit = emit
    labels = torch.tensor([[1.0 - y, float(y)] for y in data["labels"]])
    loop = L.Loop(
        acc=acc, setup=setup, module=module, opt=opt, loss_fn=make_loss("xent", {}, 2), batch_target=None,
        labels=labels, job=job, test_labels=[], events=events, n_classes=2,
    )  # fmt: skip
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    sync(device)
    t = time.perf_counter()
    L.train_loop(loop)
    sync(device)
    seconds = time.perf_counter() - t
    events.close()
    fused = bool(opt.optimizer.defaults.get("fused")) if hasattr(opt, "optimizer") else False
    return {
        **counts,
        "seconds": seconds,
        "steps": loop.step,
        "minibatch": minibatch,
        "fused": fused,
        "n_params": non_embedding_params(setup.module),
    }


def child(args) -> None:
    work = Path(args.child_work)
    if args.child == "reference":
        out = reference_side(work, args.device, args.ref_attention)
    else:
        out = w2s_side(work, args.device, args.child, args.minibatch)
    out["peak_mb"] = peak_memory_mb(args.device)
    print("RESULT " + json.dumps(out), flush=True)


# --- the parent: sides, ingest, table ---------------------------------------------------------


def run_side(work: Path, side: str, args) -> dict:
    """One side in a fresh process (so each has its own memory high-water); its RESULT line."""
    cmd = [sys.executable, __file__, "--child", side, "--child-work", str(work), "--device", args.device]
    cmd += ["--minibatch", str(args.minibatch), "--ref-attention", args.ref_attention]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONPATH=str(ROOT))
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    lines = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    if done.returncode or not lines:
        sys.exit(f"side {side} failed ({work.name}):\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def ingest_cost(events: Path, scratch: Path) -> tuple[float, float]:
    """(seconds to ingest the whole events file in one call, seconds with one call per line) into a fresh store."""
    from w2s_core.store import Store

    lines = events.read_bytes().splitlines(keepends=True)
    with Store.open(scratch / "one") as store:
        t = time.perf_counter()
        store.ingest_events("a" * 64, events)
        whole = time.perf_counter() - t
    growing = scratch / "growing.jsonl"
    growing.write_bytes(b"")
    with Store.open(scratch / "ticks") as store:
        t = time.perf_counter()
        for line in lines:
            with open(growing, "ab") as f:
                f.write(line)
            store.ingest_events("b" * 64, growing)
        ticks = time.perf_counter() - t
    return whole, ticks


def prepare(work: Path, model: str, data: str, n: int, device: str, corpus, labels, tok) -> None:
    from w2s_core.training.models import encode

    work.mkdir(parents=True, exist_ok=True)
    texts, ys = examples(data, n, corpus, labels)
    ids = encode(tok, texts, MAX_LENGTH)
    (work / "data.json").write_text(json.dumps({"texts": texts, "ids": ids, "labels": ys}))
    make_model(work / "model", model, tok, device)


def table_rows(name: str, results: dict, tokens: int, n: int, peak: float) -> list[str]:
    base = results.get("reference")
    rows = []
    for side, r in results.items():
        per_s = n / r["seconds"]
        ratio = f"{base['seconds'] / r['seconds']:.2f}x" if base else "-"
        pad = 1 - tokens / r["padded_tokens"] if r["padded_tokens"] else 0.0
        mfu = 6 * r["n_params"] * tokens / r["seconds"] / peak
        rows.append(
            f"{name:26} {side:13} {r['minibatch']:>3} {per_s:>9.1f} {tokens / r['seconds']:>10.0f} {ratio:>7} "
            f"{pad:>6.1%} {r['peak_mb']:>9.0f} {mfu:>6.1%}"
        )
    return rows


def event_lines(name: str, results: dict, work: Path) -> list[str]:
    w2s = results.get("w2s")
    if not w2s:
        return []
    steps, seconds = w2s["steps"], w2s["seconds"]
    share = lambda s: f"{s / steps * 1e3:.3f} ms/step = {s / seconds:.3%}"  # noqa: E731
    out = [
        f"{name}: {steps} steps, {seconds / steps * 1e3:.1f} ms per training step (w2s side)",
        f"  building events (progress_event, incl. the one host read per step): {share(w2s['event_s'])}",
        f"  writing events.jsonl (json + write + flush): {share(w2s['emit_s'])}",
    ]
    if "w2s-noevents" in results:
        off = results["w2s-noevents"]["seconds"]
        out.append(
            f"  training with events to a file vs to None: {seconds:.2f} s vs {off:.2f} s ({seconds / off - 1:+.1%})"
        )
    whole, ticks = ingest_cost(work / "w2s.events.jsonl", Path(tempfile.mkdtemp(dir=work)))
    out.append(f"  store ingest, one call for the file: {whole * 1e3:.1f} ms = {whole / seconds:.3%} of training")
    out.append(f"  store ingest, one call per line (a tick per step): {share(ticks)}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--configs", help="MODEL:DATA:N,... (default per device: " + "; ".join(DEFAULTS.values()) + ")")
    parser.add_argument("--minibatch", type=int, default=32, help="the w2s sides' minibatch (the reference's is 1)")
    parser.add_argument("--sides", default=",".join(SIDES))
    parser.add_argument("--ref-attention", default="eager", choices=("eager", "sdpa"))
    parser.add_argument("--keep", type=Path, help="work folder to keep (default: a temporary one)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    import torch

    root = args.keep or Path(tempfile.mkdtemp(prefix="w2s-trainer-speed-"))
    corpus, labels = snippets()
    tok = tokenizer(corpus)
    peak, how = peak_flops(args.device)
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"device: {where}; torch {torch.__version__}; peak matmul {how}: {peak / 1e12:.3f} TFLOP/s")
    header = f"{'model / data / examples':26} {'side':13} {'mb':>3} {'ex/s':>9} {'tokens/s':>10} {'vs ref':>7} "
    rows, notes = [header + f"{'pad':>6} {'peak MiB':>9} {'MFU':>6}"], []
    for config in (args.configs or DEFAULTS[args.device]).split(","):
        model, data, n = config.split(":")
        work = root / f"{model}-{data}"
        prepare(work, model, data, int(n), args.device, corpus, labels, tok)
        ids = json.loads((work / "data.json").read_text())["ids"]
        results = {side: run_side(work, side, args) for side in args.sides.split(",")}
        tokens = sum(map(len, ids))
        rows += table_rows(f"{model}/{data}/{len(ids)}", results, tokens, len(ids), peak)
        notes += event_lines(f"{model}/{data}", results, work)
        print(rows[-1], flush=True)  # progress; the whole table follows
    print("\n" + "\n".join(rows) + "\n\nmonitoring overhead (issue 11, item 6):\n" + "\n".join(notes))
    print(f"(mb: minibatch; pad: padded share of positions; MFU: 6·N·tokens/s over the peak above; folder {root})")


if __name__ == "__main__":
    main()
