"""A results database filled directly through the store's API, for the TUI's tests (no training).

Three models, two seeds, two transfer methods and one bootstrap chain, with fixed accuracies so
the PGR table and grids are the same on every machine.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from w2s_core.store import Store

MODELS = ("m-small", "m-mid", "m-big")
GT_ACC = {"m-small": 0.60, "m-mid": 0.70, "m-big": 0.80}
METHODS = {"xent": 0.5, "logconf": 0.75}  # share of the gap each method recovers
SEEDS = (0, 1)
RECIPE = "grid-demo"


def fill(results: Path) -> dict[str, str]:
    """Write the database; returns {description: job hash} for the tests to pick jobs by."""
    hashes = {}
    with Store.open(results) as store:
        store.add_recipe("r" * 64, RECIPE, "grid-demo.toml", "name = 'grid-demo'")
        run_id = store.start_run("r" * 64, ["w2s", "run"], {})
        n = 0

        def job(name: str, kind: str, model: str, seed: int, role: dict, acc: float, weak=None, loss=None) -> str:
            nonlocal n
            n += 1
            h = f"{n:02d}" + hashlib.sha256(name.encode()).hexdigest()[:62]  # hex, as real job hashes
            store.upsert_job({"hash": h, "kind": kind, "model": model, "weak_model": weak, "loss": loss, "seed": seed,
                              "spec": {"data": {"name": "synthetic", "n_train": 200}, "train": {"epochs": 1},
                                       "train_split": "A" if kind == "gt" else "B", "predict_split": "B"},
                              "recipe_hash": "r" * 64, "run_id": run_id, "dir": f"jobs/{h[:16]}"})
            store.link_job("r" * 64, h, json.dumps(role, sort_keys=True))
            store.set_job_status(h, "done", started_at=1_700_000_000.0, finished_at=1_700_000_060.0, exit_code=0)
            store.set_results(h, {"test_acc": acc, "test_auroc": acc + 0.05, "n_test": 1000})
            job_dir = results / "jobs" / h[:16]
            job_dir.mkdir(parents=True, exist_ok=True)
            events = [{"step": s, "loss": 0.7 - 0.05 * s, "train_acc": 0.5 + 0.02 * s, "examples": 10 * s,
                       "examples_per_s": 20.0, **({"test_acc": acc - 0.01 * (5 - s)} if s % 2 == 0 else {})}
                      for s in range(1, 6)]
            (job_dir / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
            (job_dir / "log.txt").write_text(f"training {name}\nfinished {name}\n")
            store.ingest_events(h, job_dir / "events.jsonl")
            hashes[name] = h
            return h

        for seed in SEEDS:
            for m in MODELS:
                job(f"gt {m} s{seed}", "gt", m, seed, {"role": "gt", "model": m, "seed": seed}, GT_ACC[m])
            for i, weak in enumerate(MODELS):
                for strong in MODELS[i + 1:]:
                    for method, share in METHODS.items():
                        acc = GT_ACC[weak] + share * (GT_ACC[strong] - GT_ACC[weak]) + 0.01 * seed
                        job(f"{weak} to {strong} {method} s{seed}", "transfer", strong, seed,
                            {"role": "transfer", "weak": weak, "strong": strong, "method": method, "seed": seed},
                            acc, weak=weak, loss=method)
            chain = list(MODELS)
            job(f"boot1 s{seed}", "bootstrap", "m-mid", seed,
                {"role": "bootstrap", "chain": chain, "method": "boot-xent", "step": 1, "seed": seed}, 0.66, "m-small", "xent")
            job(f"boot2 s{seed}", "bootstrap", "m-big", seed,
                {"role": "bootstrap", "chain": chain, "method": "boot-xent", "step": 2, "seed": seed}, 0.72, "m-mid", "xent")
        store.finish_run(run_id, "done")
    return hashes
