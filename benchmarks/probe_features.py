"""How much faster are probe features in bfloat16 than in float32, and how far apart? Both in one run.

A probe job (`mode = "probe"`) extracts its frozen backbone's pooled features once
(`w2s_core.training.setup.probe_features` -> `features.cached_features` -> `features.extract_features`: inputs
sorted longest first, passes of at most max(minibatch_size, 32) x max_length padded tokens) in its compute
dtype: bfloat16 on a GPU with `[train] dtype = "auto"` (weights loaded in bf16, no autocast), float32 on a
CPU. This runs that same path, `setup.probe_features` with `[train] dtype` "float32" (TF32 off, torch's
default) and then "bfloat16", on the same texts and the same random-init model, each against a fresh feature
cache (so each extracts), after one untimed warm-up call per dtype on other texts (CUDA context, kernels, the
weights in the page cache). Printed per dtype: seconds of the call (weights loading included, as a probe job
pays it; the loading's own share beside it), texts/s and real tokens/s over the call and over its passes
alone, peak CUDA memory; then the ratio, and how far the bf16 features lie from the float32 ones: max |d|
against the features' largest magnitude, per-text relative L2 error (median, max) and the smallest cosine
similarity.

Texts: `benchmarks/trainer_speed.py`'s synthetic long inputs (`examples`: words of the movie snippets'
vocabulary, 64-192 long with `--data long`, 128-512 with `long-gpu`), its word-level tokenizer and its
random-init model configs (`MODELS`, `make_model`: seed 0, dropout off, real vocabulary sizes). Without
the movie snippets (`w2s assets install demo`) the words come from the built-in tiny models' word list
(the run says so): the speed and the bf16 error do not depend on which words. Probe settings
(max_length, minibatch_size) are the registry's for the model (gpt2-29m: gpt2's). Inputs longer than
max_length are cut as a probe job cuts them.

Usage: python benchmarks/probe_features.py [--device cpu|cuda] [--model NAME] [--n N] [--data long|long-gpu]
       [--max-length L] [--keep DIR]
Defaults: CPU gpt2-29m, 64 texts (about 25 s on 2 cores); CUDA gpt2-large, 2000 texts (about 30 s on
an H200, the model built and saved included).
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # every model here is local: never ask the hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # the loading bars would bury the figures

from trainer_speed import DATA, MODELS, examples, make_model, snippets, tokenizer  # noqa: E402
from trainer_speed_sides import sync  # noqa: E402

DEFAULTS = {"cpu": ("gpt2-29m", 64), "cuda": ("gpt2-large", 2000)}
REGISTRY_NAME = {"gpt2-29m": "gpt2", "qwen2-0.5b": "Qwen/Qwen2-0.5B"}  # whose probe settings a config takes
DTYPES = ("float32", "bfloat16")  # `[train] dtype` of each side
WARMUP_TEXTS = 16


def say(*parts) -> None:
    print(*parts, flush=True)


def corpus() -> tuple[list[str], str]:
    """The texts whose words the synthetic inputs draw from, and where they come from."""
    from w2s_core.errors import W2SError

    try:
        return snippets()[0], "the movie snippets' vocabulary"
    except W2SError:
        from w2s_core.spec.models import tiny_vocab

        words = [w for w in tiny_vocab("words") if w.isalpha()]
        return [" ".join(words)], f"the tiny models' {len(words)} words (movie snippets not installed)"


def model_spec(name: str, folder: Path) -> dict:
    """A job's `model` entry for the saved random-init model, with its registry settings."""
    from w2s_core.spec.registry import model_defaults

    return {**model_defaults(REGISTRY_NAME.get(name, name)), "name": name, "path": str(folder)}


def probe_job(spec: dict, dtype: str, max_length: int) -> dict:
    """The parts of a probe job's job.json that `setup.probe_features` reads."""
    train = {"mode": "probe", "max_length": max_length, "minibatch_size": spec["minibatch_size"], "dtype": dtype}
    return {"model": spec, "train": train, "data": {"name": "synthetic"}}


def timed_loading():
    """Wrap the feature extractor's model loading with a timer; returns the list of seconds it appends to."""
    from w2s_core.training import features

    seconds: list[float] = []
    real = features.load_backbone

    def load(*args, **kwargs):
        t = time.perf_counter()
        model = real(*args, **kwargs)
        seconds.append(time.perf_counter() - t)
        return model

    features.load_backbone = load
    return seconds


def extract(job: dict, texts: list[str], device, cache: Path, loads: list[float]) -> dict:
    """One probe-feature extraction through the probe path, against the fresh cache `cache`."""
    import torch

    from w2s_core.training.setup import probe_features

    os.environ["W2S_CACHE"] = str(cache)  # read at each call (w2s_core.paths.cache_dir)
    gc.collect()  # the previous call's model, gone before this one's peak is measured
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    before = len(loads)
    sync(device.type)
    t = time.perf_counter()
    features, _ = probe_features(job, texts, device)  # row i: texts[i]
    sync(device.type)
    seconds = time.perf_counter() - t
    assert len(loads) == before + 1, "the features came from a cache, not an extraction"
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    return {"features": features, "seconds": seconds, "load": loads[-1], "peak_gib": peak}


def shape(texts: list[str], tok, spec: dict, max_length: int, side: str = "right") -> dict:
    """Real tokens, padded tokens and passes of the extraction (features.token_batches)."""
    from w2s_core.training.features import token_batches
    from w2s_core.training.models import encode

    lengths = [len(x) for x in encode(tok, texts, max_length, side)]
    budget = max(spec["minibatch_size"], 32) * max_length
    batches = token_batches(lengths, budget)
    padded = sum(lengths[b[0]] * len(b) for b in batches)
    return {"tokens": sum(lengths), "padded": padded, "passes": len(batches), "budget": budget}


def gap(a, b) -> dict:
    """How far features `b` lie from the reference `a` (both [N, H] float32)."""
    import torch

    d = (a - b).abs()
    rel = ((a - b).norm(dim=1) / a.norm(dim=1).clamp_min(1e-12)).tolist()
    cos = torch.nn.functional.cosine_similarity(a, b, dim=1)
    return {
        "max_abs": d.max().item(),
        "scale": a.abs().max().item(),
        "rms": a.pow(2).mean().sqrt().item(),
        "rel_median": statistics.median(rel),
        "rel_max": max(rel),
        "cos_min": cos.min().item(),
    }


def table(results: dict[str, dict], counts: dict, n: int) -> None:
    say(f"\n{'dtype':<9} {'s':>7} {'load s':>7} {'texts/s':>9} {'tok/s':>10} {'passes: texts/s':>16} {'peak GiB':>9}")
    for dtype, r in results.items():
        passes = max(1e-9, r["seconds"] - r["load"])
        peak = f"{r['peak_gib']:.2f}" if r["peak_gib"] is not None else "-"
        say(
            f"{dtype:<9} {r['seconds']:>7.2f} {r['load']:>7.2f} {n / r['seconds']:>9.1f} "
            f"{counts['tokens'] / r['seconds']:>10.0f} {n / passes:>16.1f} {peak:>9}"
        )
    fp32, bf16 = results["float32"], results["bfloat16"]
    ratio = fp32["seconds"] / bf16["seconds"]
    ratio_passes = (fp32["seconds"] - fp32["load"]) / max(1e-9, bf16["seconds"] - bf16["load"])
    say(f"bf16 speed-up: x{ratio:.2f} over the whole call, x{ratio_passes:.2f} over the passes alone")
    g = gap(fp32["features"], bf16["features"])
    say(
        f"bf16 vs float32 features: max |d| {g['max_abs']:.4g} "
        f"(features' max |x| {g['scale']:.4g}, rms {g['rms']:.4g}: "
        f"{g['max_abs'] / max(g['scale'], 1e-12):.2%} of the max); per text, relative L2 error median "
        f"{g['rel_median']:.3%}, max {g['rel_max']:.3%}; smallest cosine {g['cos_min']:.6f}"
    )


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--model", choices=sorted(MODELS), help="default: gpt2-29m on cpu, gpt2-large on cuda")
    p.add_argument("--n", type=int, help="texts (default: 64 on cpu, 2000 on cuda)")
    p.add_argument("--data", choices=[d for d in DATA if DATA[d] is not None], default="long")
    p.add_argument("--max-length", type=int, help="default: the registry's for the model (gpt2: 1024)")
    p.add_argument("--keep", type=Path, help="a folder to keep the model and caches in (default: a temporary one)")
    args = p.parse_args()
    model, n = DEFAULTS[args.device]
    args.model, args.n = args.model or model, args.n or n
    return args


def main() -> None:
    args = parse()
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit(f"--device cuda: torch {torch.__version__} finds no CUDA GPU here; run with --device cpu")
    device = torch.device(args.device)
    work = args.keep or Path(tempfile.mkdtemp(prefix="w2s-probe-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        run(args, device, work)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, device, work: Path) -> None:
    import torch

    t = time.perf_counter()
    words, source = corpus()
    texts, _ = examples(args.data, args.n + WARMUP_TEXTS, words, [0] * len(words))
    warm, texts = texts[:WARMUP_TEXTS], texts[WARMUP_TEXTS:]
    tok = tokenizer(words)
    make_model(work / "model", args.model, tok, args.device)
    spec = model_spec(args.model, work / "model")
    max_length = args.max_length or spec["max_length"]
    counts = shape(texts, tok, spec, max_length)
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    built = time.perf_counter() - t
    say(f"{args.model} (random init) on {name}; {args.n} texts ({args.data}: {source}); built in {built:.1f} s")
    say(
        f"probe path: max_length {max_length}, passes of at most {counts['budget']} padded tokens; "
        f"{counts['tokens']} real tokens, {counts['passes']} passes, "
        f"padding {1 - counts['tokens'] / counts['padded']:.1%}"
    )
    loads = timed_loading()
    for dtype in DTYPES:  # untimed warm-up, each dtype on its own texts and cache
        extract(probe_job(spec, dtype, max_length), warm, device, work / f"warm-{dtype}", loads)
    results = {}
    for dtype in DTYPES:
        results[dtype] = extract(probe_job(spec, dtype, max_length), texts, device, work / f"cache-{dtype}", loads)
        say(f"  {dtype}: {results[dtype]['seconds']:.2f} s")
    table(results, counts, args.n)


if __name__ == "__main__":
    main()
