"""Expand a recipe into a DAG of jobs, each named by a content hash so finished work is never redone.

Which split each job trains on and labels (halves A and B come from `data.make_splits`):
- GT job of model M: trains on half A with ground-truth labels, predicts half B. It is the weak
  supervisor for every bigger model and the ceiling for M itself (as the reference code does).
- Transfer weak->strong: trains on half B with the weak GT job's soft labels of B, predicts half A
  (a model never labels the half it was trained on, so it can seed the next bootstrap step).
- Bootstrap chain M1->...->Mn, relabel "alternate" (default): step 1 is exactly the transfer
  M1->M2 (same hash, trained once); step k trains on the half step k-1 predicted, with its labels,
  and predicts the other half. relabel "same": every step trains on B and labels B, i.e. a model
  labels the examples it was trained on; only when the recipe asks for it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from w2s_core.data import dataset_fingerprint
from w2s_core.spec.models import model_fingerprint
from w2s_core.spec.recipe import TRAIN_KEYS, Recipe

SPEC_VERSION = 1
MODEL_IDENTITY_KEYS = ("name", "path", "revision", "arch", "trust_remote_code", "tiny")
OTHER_HALF = {"A": "B", "B": "A"}


@dataclass
class Job:
    hash: str
    kind: str  # "gt" | "transfer" | "bootstrap"
    model: str
    seed: int
    spec: dict  # what the trainer reads
    deps: list[str]
    weak_model: str | None = None
    method: str | None = None
    roles: list[dict] = field(default_factory=list)

    @property
    def short(self) -> str:
        return self.hash[:10]


@dataclass
class Plan:
    recipe: Recipe
    jobs: list[Job]  # in dependency order

    def job(self, hash: str) -> Job:
        return next(j for j in self.jobs if j.hash == hash)


def job_hash(spec: dict, upstream: str | None) -> str:
    """Hash what determines a job's outputs: model identity, data, split, seed, settings, upstream."""
    model = spec["model"]
    key = {
        "version": SPEC_VERSION,
        "model": model_fingerprint(model),
        "data": dataset_fingerprint(spec["data"]),
        "data_settings": {k: v for k, v in spec["data"].items() if k != "path"},  # the path's content is hashed
        **{k: v for k, v in spec.items() if k not in ("model", "data", "labels")},
        "labels": "gt" if upstream is None else {"from": upstream, "split": spec["labels"]["split"]},
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def build_plan(recipe: Recipe) -> Plan:
    """Every GT job, then transfers, then bootstrap steps: a valid dependency order."""
    jobs: dict[str, Job] = {}

    def add(job: Job, role: dict) -> Job:
        existing = jobs.setdefault(job.hash, job)
        existing.roles.append(role)
        return existing

    def spec_for(model_name: str, seed: int, train_split: str, labels, predict: str, loss: dict) -> dict:
        model = recipe.model(model_name)
        train = dict(recipe.train)
        train.update({k: model[k] for k in TRAIN_KEYS if k in model})
        return {
            "model": {k: model[k] for k in MODEL_IDENTITY_KEYS if k in model},
            "train": train,
            "data": recipe.data,
            "seed": seed,
            "train_split": train_split,
            "labels": labels,
            "predict_split": predict,
            "loss": loss,
        }

    def gt(model: str, seed: int) -> Job:
        spec = spec_for(model, seed, "A", "gt", "B", {"name": "xent", "params": {}})
        job = Job(job_hash(spec, None), "gt", model, seed, spec, [])
        return add(job, {"role": "gt", "model": model, "seed": seed})

    def transfer(upstream: Job, model: str, seed: int, method: dict, train_split: str, predict: str) -> Job:
        labels = {"from": upstream.hash, "split": train_split}
        loss = {"name": method["loss"], "params": method["params"]}
        spec = spec_for(model, seed, train_split, labels, predict, loss)
        kind = "transfer" if upstream.kind == "gt" else "bootstrap"
        return Job(job_hash(spec, upstream.hash), kind, model, seed, spec, [upstream.hash],
                   weak_model=upstream.model, method=method["name"])

    for seed in recipe.seeds:
        for m in recipe.models:
            gt(m["name"], seed)
        for weak, strong in recipe.pairs:
            for method in recipe.transfers:
                job = transfer(gt(weak, seed), strong, seed, method, "B", "A")
                add(job, {"role": "transfer", "weak": weak, "strong": strong, "method": method["name"], "seed": seed})
        for chain in recipe.chains:
            upstream = gt(chain["models"][0], seed)
            train_split = "B"
            for step, model in enumerate(chain["models"][1:], start=1):
                predict = train_split if chain["relabel"] == "same" else OTHER_HALF[train_split]
                job = transfer(upstream, model, seed, chain, train_split, predict)
                upstream = add(job, {"role": "bootstrap", "chain": chain["models"], "method": chain["name"],
                                     "step": step, "seed": seed})
                train_split = predict
    return Plan(recipe, list(jobs.values()))


def describe(job: Job) -> str:
    """One line saying what a job trains on, for --dry-run and progress output."""
    spec = job.spec
    if job.kind == "gt":
        what = f"GT labels of {spec['train_split']}"
    else:
        what = f"{job.weak_model}'s labels of {spec['train_split']} with {job.method}"
    return f"{job.kind:9} {job.model} seed={job.seed} trains on {what}, labels {spec['predict_split']}"
