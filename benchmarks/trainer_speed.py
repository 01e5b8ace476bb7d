"""How fast is the w2s trainer? Side by side with a loop of the reference's semantics, in one run.

Each side trains the same random-init model on the same examples (one epoch, seed 0, effective
batch 32, Adam, soft-label cross-entropy) in a fresh process, after one untimed warm-up pass:
- reference: `benchmarks/reference_loop.py` (openai/weak-to-strong `train.py` semantics, minibatch
  1, `pad_sequence` with id 0, stacked logits, `loss.item()` every batch; its docstring says what we
  follow and where we differ);
- w2s: the real trainer (`w2s_core.training`: `build_finetune`, `prepare`, `Loop`, `train_loop`)
  at its defaults, minibatch `--minibatch` (8 on CPU, where a few sequences fill the cores and
  shorter minibatches pad less; 32, one pass per step, on CUDA), events written to a file
  (`benchmarks/trainer_speed_sides.py` runs each side);
- w2s+group: the same with `[train] group_by_length = true` (opt-in: it changes which examples
  share a step);
- w2s, no events: the w2s side with the EventWriter writing nowhere (`EventWriter(None)`);
- w2s+compile, w2s+group+compile (named in `--sides`): with `[train] compile = true`
  (`w2s_core/training/compiling.py`: the model's blocks compiled by torch.compile).
Printed per side: examples/s, tokens/s (real tokens, padding left out), the ratio to the
reference, the share of padded positions, peak memory (CPU: the process's RSS high-water,
`ru_maxrss`, model loading included; CUDA: `max_memory_allocated` of the timed loop) and MFU =
6 x N x tokens/s / peak, N the parameters less the embedding tables (Kaplan's 6N: a classifier
computes no LM head, and an embedding lookup is no matmul; attention's own FLOPs left out), the
peak measured in this run by a large matmul in the training dtype (fp32 on CPU, bf16 on CUDA).

Besides the whole timed loop (compilation included), each w2s side's rate is also given "late":
from its middle optimiser step to its last (the time and real tokens at each step's end are taken
when the step's loss is read, so the GPU has finished it), which leaves warm-up and compilation out.
`--profile` (CUDA) runs torch.profiler over three steps near the end of each w2s side and prints
the GPU's busy share of their wall time, the share of its busy time by kind of kernel (matrix
products, attention, optimizer, elementwise) and the ten longest kernels.

Item 6 of issue 11, the monitoring overhead: the w2s side times, per optimiser step, building its
event (`progress.progress_event`, which reads a step's loss and accuracy from the device: the one
host sync per step; on a GPU one step late, so it waits for the step before while the current one's
kernels run) and writing it (`EventWriter.emit`: JSON, write, flush); the run without
events gives the end-to-end difference (within run-to-run noise); and the store ingest of the
w2s side's events.jsonl (`Store.ingest_events`, as the supervisor runs it) is timed in one call
and with one call per line (a supervisor tick after every step, the worst case), each as a share
of the training time. GPU sampling is the supervisor's (`w2s_core.supervision`), not timed here.

Models: CPU, a GPT-2-style model (6 layers, width 512: 19M parameters besides its 10M of
embeddings) on the movie snippets (`w2s assets install demo`; real review sentences, labels =
rating > 0) and on longer synthetic inputs (words drawn from the snippets' vocabulary, 64-192
long); the default run takes about 3 minutes on 2 idle cores. CUDA (`--device cuda`):
random-init configs of gpt2-medium, gpt2-large and a Qwen2-0.5B-like model, bf16 autocast on
fp32 weights (the trainer's dtype "auto"), on the snippets and on synthetic inputs of 128-512
words. The tokenizer is a word-level one over the snippets' vocabulary (no
download needed), so a token is a word or a punctuation mark; the GPU configs keep their real
vocabulary sizes. Inputs are never truncated (max_length 1024).

Usage: python benchmarks/trainer_speed.py [--device cpu|cuda] [--configs NAME:DATA:N,...]
       [--minibatch 8 (CPU) | 32 (CUDA)] [--sides reference,w2s,w2s+group,w2s-noevents] [--keep DIR]
       [--profile]
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
    "gpt2-29m": {"model_type": "gpt2", "n_embd": 512, "n_layer": 6, "n_head": 8},
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
DATA = {"snippets": None, "long": (64, 192), "long-gpu": (128, 512)}
DEFAULTS = {
    "cpu": "gpt2-29m:snippets:384,gpt2-29m:long:128",
    "cuda": "gpt2-medium:snippets:512,gpt2-medium:long-gpu:512,gpt2-large:long-gpu:256,qwen2-0.5b:long-gpu:256",
}
SIDES = ("reference", "w2s", "w2s+group", "w2s-noevents")  # also w2s+compile, w2s+group+compile (--sides)


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
    from trainer_speed_sides import sync

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


# --- the parent: sides, ingest, table ---------------------------------------------------------


def run_child(cmd: list[str], timeout: float | None = None, **extra: str) -> tuple[dict | None, str]:
    """Run a benchmark's child process (with `extra` environment variables); (its last `RESULT {json}` line,
    "") or (None, why it failed). The child sees this repository on its path, before any PYTHONPATH
    already set (carried wheels). benchmarks/memory_plan.py runs its cases through it too."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONPATH=path, **extra)
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout} s"
    lines = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    if done.returncode or not lines:
        return None, f"exit {done.returncode}:\n{done.stdout[-1500:]}\n{done.stderr[-3000:]}".strip()
    return json.loads(lines[-1][len("RESULT ") :]), ""


def run_side(work: Path, side: str, args) -> dict:
    """One side in a fresh process (so each has its own memory high-water); its RESULT line."""
    sides = Path(__file__).with_name("trainer_speed_sides.py")
    cmd = [sys.executable, str(sides), side, str(work), args.device, str(args.minibatch), args.ref_attention]
    result, why = run_child(cmd, **({"W2S_BENCH_PROFILE": "1"} if args.profile else {}))
    if result is None:
        sys.exit(f"side {side} failed ({work.name}): {why}")
    return result


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


def steady(r: dict) -> tuple[float, float] | None:
    """(tokens/s, steps/s) from the middle step to the last one before profiling: compilation and warm-up left out."""
    marks = r.get("marks") or []
    i0, i1 = len(marks) // 2, min(r.get("steady_end", len(marks) - 1), len(marks) - 1)
    if i1 - i0 < 2:
        return None
    dt = marks[i1][0] - marks[i0][0]
    return (marks[i1][1] - marks[i0][1]) / dt, (i1 - i0) / dt


def table_rows(name: str, results: dict, tokens: int, n: int, peak: float) -> list[str]:
    base = results.get("reference")
    rows = []
    for side, r in results.items():
        per_s = n / r["seconds"]
        ratio = f"{base['seconds'] / r['seconds']:.2f}x" if base else "-"
        pad = 1 - tokens / r["padded_tokens"] if r["padded_tokens"] else 0.0
        mfu = 6 * r["n_params"] * tokens / r["seconds"] / peak
        late = steady(r)
        late_cols = f"{late[1] * 32:>9.1f} {6 * r['n_params'] * late[0] / peak:>6.1%}" if late else f"{'-':>9} {'-':>6}"
        rows.append(
            f"{name:26} {side:18} {r['minibatch']:>3} {per_s:>9.1f} {tokens / r['seconds']:>10.0f} {ratio:>7} "
            f"{pad:>6.1%} {r['peak_mb']:>9.0f} {mfu:>6.1%} {late_cols}"
        )
    return rows


def profile_lines(name: str, results: dict) -> list[str]:
    """Where the GPU time of three late optimiser steps went, per side that was profiled."""
    out = []
    for side, r in results.items():
        p = r.get("profile")
        if not p:
            continue
        kinds = ", ".join(f"{k} {v:.0%}" for k, v in p["kinds"].items())
        out.append(
            f"{name} {side}: 3 steps {p['wall_ms']:.0f} ms wall, GPU busy {p['busy_ms']:.0f} ms "
            f"({p['busy_ms'] / p['wall_ms']:.0%}), {p['kernels']} kernels; busy time by kind: {kinds}"
        )
        out += [f"    {ms:8.1f} ms {n:5}x  {kname}" for kname, ms, n in p["top"]]
        if "cpu_top" in p:
            out.append(f"  host side: {p['cpu_ms']:.0f} ms of CPU op time (self), longest ops:")
            out += [f"    {ms:8.1f} ms {n:5}x  {kname}" for kname, ms, n in p["cpu_top"]]
    return out


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
    parser.add_argument("--minibatch", type=int, help="the w2s sides' minibatch (default 8 on CPU, 32 on CUDA)")
    parser.add_argument("--sides", help=f"default: {','.join(SIDES)} (the last for the first config only)")
    parser.add_argument("--ref-attention", default="eager", choices=("eager", "sdpa"))
    parser.add_argument("--keep", type=Path, help="work folder to keep (default: a temporary one)")
    parser.add_argument("--profile", action="store_true", help="CUDA: profile three late steps of each w2s side")
    args = parser.parse_args()
    args.minibatch = args.minibatch or (32 if args.device == "cuda" else 8)
    import torch

    from w2s_core.training.batching import mega_steps

    root = args.keep or Path(tempfile.mkdtemp(prefix="w2s-trainer-speed-"))
    corpus, labels = snippets()
    tok = tokenizer(corpus)
    peak, how = peak_flops(args.device)
    runs, notes = [], []
    for config in (args.configs or DEFAULTS[args.device]).split(","):
        model, data, n = config.split(":")
        work = root / f"{model}-{data}"
        prepare(work, model, data, int(n), args.device, corpus, labels, tok)
        ids = json.loads((work / "data.json").read_text())["ids"]
        sides = (args.sides or ",".join(SIDES if not runs else SIDES[:-1])).split(",")  # the no-events run: once
        results = {}
        for side in sides:
            results[side] = run_side(work, side, args)
            # the side's row as soon as it is known: a run cut short by a timeout keeps what it measured
            one = {side: results[side]}
            print(table_rows(f"{model}/{data}/{len(ids)}", one, sum(map(len, ids)), len(ids), peak)[0])
            print("\n".join(profile_lines(f"{model}/{data}", one)), flush=True)
        runs.append((f"{model}/{data}/{len(ids)}", results, sum(map(len, ids)), len(ids)))
        notes += event_lines(f"{model}/{data}", results, work)
        notes.append(f"  group_by_length: mega-batches of {mega_steps(len(ids), 32)} step(s) of 32 (batching.py)")
    peak = max(peak, peak_flops(args.device)[0])  # measured at both ends, the higher kept: a busy CPU reads low
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"\ndevice: {where}; torch {torch.__version__}; peak matmul {how}: {peak / 1e12:.3f} TFLOP/s")
    header = f"{'model / data / examples':26} {'side':18} {'mb':>3} {'ex/s':>9} {'tokens/s':>10} {'vs ref':>7} "
    rows = [header + f"{'pad':>6} {'peak MiB':>9} {'MFU':>6} {'late ex/s':>9} {'lateMFU':>6}"]
    for name, results, tokens, n in runs:
        rows += table_rows(name, results, tokens, n, peak)
    print("\n".join(rows) + "\n\nmonitoring overhead (issue 11, item 6):\n" + "\n".join(notes))
    profiles = [line for name, results, _, _ in runs for line in profile_lines(name, results)]
    if profiles:
        print("\nwhere the GPU time goes (--profile):\n" + "\n".join(profiles))
    print(
        "(mb: minibatch; pad: padded share of positions; MFU: 6·N·tokens/s over the peak above, whole timed "
        "loop; late: from the middle optimiser step to the last, compilation and warm-up left out, before "
        f"any profiled steps; folder {root})"
    )


if __name__ == "__main__":
    main()
