"""Expand a recipe into a DAG of jobs, each named by a content hash (its key) so finished work is never redone.

Which split each job trains on and labels (halves A and B come from `data.make_splits`):
- GT job of model M: trains on half A with ground-truth labels, predicts half B. It is the weak
  supervisor for every bigger model and the ceiling for M itself (as the reference code does).
- Transfer weak->strong: trains on half B with the weak GT job's soft labels of B, predicts half A
  (a model never labels the half it was trained on, so it can seed the next bootstrap step).
- Bootstrap chain M1->...->Mn, relabel "alternate" (default): step 1 is exactly the transfer
  M1->M2 (same key, trained once); step k trains on the half step k-1 predicted, with its labels,
  and predicts the other half. relabel "same": every step trains on B and labels B, i.e. a model
  labels the examples it was trained on; only when the recipe asks for it.
- A self-pair M->M (explicit `pairs = [["M", "M"]]`): the transfer trains M on half B with M's own
  GT job's labels of B. Its ceiling is its weak model, so its PGR is undefined.
- A transfer's or chain's own `lr`/`epochs` reach only its jobs; the GT jobs keep the model's settings.
- Prompting job "<model>:<k>-shot" ([[prompt]]): trains nothing; labels half B (and test) with k
  demonstrations from half A; its labels of B may supervise a transfer (`pairs = [["gpt2:5-shot", "gpt2-xl"]]`).
- Generative stage of model M ([[generative]]), per seed: next-token finetuning on the inputs of A and
  B (never test) or a text file; every GT, transfer and bootstrap job of M starts from it (`init`,
  hashed with them, and a dep). Prompting jobs read the pre-trained model.
- A suite (`[[task]]` tables) plans each task as a recipe of its own; every role names its task.
- A grid (list values, `spec/grid.py`) plans each point as a recipe of its own, into the same DAG: a job
  a point does not change (a GT job under an `alpha` sweep) has one key and runs once; every role of a
  grid recipe names its point (`grid`: {name: value}). A recipe without lists plans as it always did.

A job's spec (written to job.json and the store) and its roles (why a recipe wants it, stored in
`recipe_jobs`) are plain JSON-able dicts; the TypedDicts in jobspec.py only name their keys.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from dataclasses import dataclass, field
from enum import Enum

from w2s_core.data import dataset_fingerprint
from w2s_core.spec import grid
from w2s_core.spec.checks import without_defaults
from w2s_core.spec.jobspec import (
    BootstrapRole,
    GenerativeRole,
    GtRole,
    JobSpec,
    Labels,
    LossSpec,
    PromptRole,
    Role,
    TransferRole,
)
from w2s_core.spec.losses import hashed_params
from w2s_core.spec.models import model_fingerprint
from w2s_core.spec.recipe import Recipe
from w2s_core.spec.schema import (
    NEVER_HASHED_TRAIN,
    TRAIN_KEYS,
    UNHASHED_DATA_DEFAULTS,
    UNHASHED_TRAIN_DEFAULTS,
    Chain,
    Method,
)
from w2s_core.spec.stages import prompt_name

SPEC_VERSION = 1  # bump when the meaning of a spec changes: every job key changes with it
MODEL_IDENTITY_KEYS = ("name", "path", "revision", "arch", "trust_remote_code", "tiny")
# What a model's tokenizer depends on (arch does not), for a drop-mode job's `length_filter`.
TOKENIZER_KEYS = ("name", "path", "revision", "trust_remote_code", "tiny")
OTHER_HALF = {"A": "B", "B": "A"}
# What a prompting job's outputs depend on of its [train] settings: it trains nothing, and the
# minibatch size must not change a result, so lr, epochs, batch sizes and the rest stay out of its key.
PROMPT_HASHED_TRAIN = ("max_length", "dtype")


class JobKind(str, Enum):
    """What a job is for; equal to (and stored as) its plain value: `JobKind.GT == "gt"`."""

    GT = "gt"  # ground-truth labels: the weak supervisor and the ceiling
    TRANSFER = "transfer"  # trained on a GT job's labels
    BOOTSTRAP = "bootstrap"  # trained on a transfer's or an earlier bootstrap step's labels
    PROMPT = "prompt"  # a prompted causal LM: trains nothing, labels B (a baseline, or a weak supervisor)
    GENERATIVE = "generative"  # next-token finetuning a model's GT/transfer/bootstrap jobs start from

    def __str__(self) -> str:
        return self.value


@dataclass
class Job:
    key: str  # sha256 hex of what determines the job's outputs (see job_key)
    kind: JobKind
    model: str
    seed: int
    spec: JobSpec  # what the trainer reads
    deps: list[str]  # keys of the jobs it needs (its upstream labeller, its generative stage)
    weak_model: str | None = None
    method: str | None = None
    roles: list[Role] = field(default_factory=list)

    @property
    def short(self) -> str:
        return self.key[:10]

    @property
    def runs_remote_code(self) -> bool:
        return bool(self.spec["model"].get("trust_remote_code"))


@dataclass
class Plan:
    recipe: Recipe
    jobs: list[Job]  # in dependency order

    def job(self, job_key: str) -> Job:
        return next(j for j in self.jobs if j.key == job_key)


def job_key(spec: JobSpec, upstream: str | None, data_fingerprint: str | None = None) -> str:
    """Hash what determines a job's outputs: model identity, data, split, seed, settings, upstream.
    `data_fingerprint`: `dataset_fingerprint(spec["data"])`, when the caller has it already."""
    identity = {
        "version": SPEC_VERSION,
        "model": model_fingerprint(spec["model"]),
        "data": data_fingerprint or dataset_fingerprint(spec["data"]),
        "data_settings": {k: v for k, v in spec["data"].items() if k != "path"},  # the path's content is hashed
        **{k: v for k, v in spec.items() if k not in ("model", "data", "labels", "train", "loss", "length_filter")},
        "loss": {**spec["loss"], "params": hashed_params(spec["loss"]["params"])},
        "train": without_defaults(
            {k: v for k, v in spec["train"].items() if k not in NEVER_HASHED_TRAIN}, UNHASHED_TRAIN_DEFAULTS
        ),
        "labels": "gt" if upstream is None else {"from": upstream, "split": spec["labels"]["split"]},
    }
    _stage_identity(spec, identity)
    if "length_filter" in spec:  # by what the tokenizers are, so renaming or reordering models keeps keys
        identity["length_filter"] = sorted(
            {
                json.dumps([model_fingerprint(m), bool(m.get("trust_remote_code")), m["max_length"]])
                for m in spec["length_filter"]
            }
        )
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def _stage_identity(spec: JobSpec, identity: dict) -> None:
    """A stage job's hash: a prompting job by the train settings that can change its outputs; a
    generative text file by its content, not where it lies (as a data file's path is left out)."""
    if spec.get("stage") == "prompt":
        identity["train"] = {k: v for k, v in spec["train"].items() if k in PROMPT_HASHED_TRAIN}
    text = spec.get("generative", {}).get("text")
    if isinstance(text, dict):
        identity["generative"] = {**spec["generative"], "text": {"sha256": text["sha256"]}}


def job_data(recipe: Recipe) -> dict:
    """The recipe's [data] as a job reads it, less UNHASHED_DATA_DEFAULTS: `long_inputs = "truncate_right"`
    (what w2s did before the option existed) is left out, so those jobs keep the keys they had (the
    trainer's default is the same)."""
    return without_defaults(recipe.data, UNHASHED_DATA_DEFAULTS)


def length_filter(recipe: Recipe) -> list[dict]:
    """Every model of the recipe as its tokenizer and effective max_length, sorted by name.

    With `long_inputs = "drop"` a job leaves out of every split (test, A, B) each example that is too
    long for ANY of these models (`w2s_core.training.lengths`), so all models are scored on one test
    pool and a student only trains on examples its weak supervisor labelled. So adding a model to a
    recipe (or changing one's tokenizer or max_length) changes every job's key in drop mode: their
    test pool may change.
    """
    out = []
    for model in recipe.models:
        entry = {k: model[k] for k in TOKENIZER_KEYS if model.get(k) is not None}
        entry["max_length"] = model.get("max_length", recipe.train.get("max_length"))
        out.append(entry)
    return sorted(out, key=lambda e: e["name"])


class _Planner:
    """Collects jobs by key, so a job two roles ask for (a pair and a chain's first step) is planned once.
    Plans one part (a plain recipe, or a suite's task) at a time, into one DAG."""

    def __init__(self, recipe: Recipe):
        self.suite = recipe.is_suite
        self.recipe = recipe  # the part being planned
        self.jobs: dict[str, Job] = {}
        self.init: dict[str, str] = {}  # model -> its generative stage's job key (this part and seed)
        self.grid: dict | None = None  # the grid point being planned; None without a grid
        # [data] (as JSON) -> its fingerprint: a local data file is hashed once per plan, not once per job
        # (hashing was nearly all of planning's time, and a grid plans each job once per point)
        self.fingerprints: dict[str, str] = {}

    def key(self, spec: JobSpec, upstream: str | None) -> str:
        """`job_key`, with the data's fingerprint computed once per distinct [data]."""
        data = json.dumps(spec["data"], sort_keys=True, default=str)
        if data not in self.fingerprints:
            self.fingerprints[data] = dataset_fingerprint(spec["data"])
        return job_key(spec, upstream, self.fingerprints[data])

    def add(self, job: Job, role: dict) -> Job:
        existing = self.jobs.setdefault(job.key, job)
        role = {**role, "task": self.recipe.task} if self.suite else role
        if self.grid is not None:
            role = {**role, "grid": dict(self.grid)}
        existing.roles.append(role)  # type: ignore[arg-type]
        return existing

    def spec(
        self,
        model_name: str,
        seed: int,
        train_split: str,
        labels: Labels | str,
        predict: str | None,
        loss: LossSpec,
        overrides: dict | None = None,
        staged: bool = True,
    ) -> JobSpec:
        """A job of `model_name`; `staged`: it starts from the model's generative stage, if it has one."""
        model = self.recipe.model(model_name)
        stage = self.init.get(model_name) if staged else None
        train = dict(self.recipe.train)
        train.update({k: model[k] for k in TRAIN_KEYS if k in model})  # per-model settings win
        # a method's own lr/epochs win over both; one equal to the model's (3 == 3.0) keeps the job's key
        train.update({k: v for k, v in (overrides or {}).items() if train.get(k) != v})
        return {
            "model": {k: model[k] for k in MODEL_IDENTITY_KEYS if k in model},
            "train": train,
            "data": job_data(self.recipe),
            "seed": seed,
            "train_split": train_split,
            "labels": labels,
            "predict_split": predict,
            "loss": loss,
            **({"length_filter": length_filter(self.recipe)} if self.recipe.data.get("long_inputs") == "drop" else {}),
            **({"init": {"from": stage}} if stage else {}),  # type: ignore[typeddict-item]
        }

    @staticmethod
    def deps(spec: JobSpec, *upstream: str) -> list[str]:
        """A job's labeller (if any), then its generative stage (if any)."""
        return [*upstream, *([spec["init"]["from"]] if "init" in spec else [])]

    def gt(self, model: str, seed: int) -> Job:
        spec = self.spec(model, seed, "A", "gt", "B", {"name": "xent", "params": {}})
        job = Job(self.key(spec, None), JobKind.GT, model, seed, spec, self.deps(spec))
        return self.add(job, GtRole(role=JobKind.GT.value, model=model, seed=seed))

    def generative(self, model: str, seed: int) -> Job:
        """The model's generative stage: its own epochs and lr, on the inputs of A and B (or a text file)."""
        stage = self.recipe.generative[model]
        spec = self.spec(model, seed, "AB", "none", None, {"name": "lm", "params": {}}, staged=False)
        spec["train"].update(epochs=stage["epochs"], lr=stage["lr"])
        spec["stage"] = "generative"
        spec["generative"] = {"text": stage["text"], "epochs": stage["epochs"], "lr": stage["lr"]}
        job = Job(self.key(spec, None), JobKind.GENERATIVE, model, seed, spec, [], method="generative")
        return self.add(job, GenerativeRole(role=JobKind.GENERATIVE.value, model=model, seed=seed))

    def prompt(self, name: str, seed: int) -> Job:
        """A prompting job (not yet added): scores half B with demonstrations from half A, trains nothing."""
        base, shots = self.recipe.prompt_jobs()[name]
        spec = self.spec(base, seed, "A", "gt", "B", {"name": "none", "params": {}}, staged=False)
        spec["stage"] = "prompt"
        spec["prompt"] = {"shots": shots}
        return Job(self.key(spec, None), JobKind.PROMPT, name, seed, spec, [], method=f"{shots}-shot")

    def transfer(self, upstream: Job, model: str, seed: int, method: Method, train_split: str, predict: str) -> Job:
        """A job trained on `upstream`'s labels of `train_split` (not yet added: the caller gives its role)."""
        labels: Labels = {"from": upstream.key, "split": train_split}
        loss: LossSpec = {"name": method["loss"], "params": method["params"]}
        spec = self.spec(model, seed, train_split, labels, predict, loss, method.get("train"))
        kind = JobKind.BOOTSTRAP if upstream.kind in (JobKind.TRANSFER, JobKind.BOOTSTRAP) else JobKind.TRANSFER
        deps = self.deps(spec, upstream.key)
        return Job(self.key(spec, upstream.key), kind, model, seed, spec, deps, upstream.model, method["name"])

    def stages(self, seed: int) -> None:
        """Generative stages first (their keys go into the model's other jobs), then prompting jobs."""
        self.init = {m: self.generative(m, seed).key for m in self.recipe.generative}
        for table in self.recipe.prompts:
            for base in table["models"]:
                for shots in table["shots"]:
                    name = prompt_name(base, shots)
                    role = PromptRole(role="prompt", model=name, base=base, shots=shots, weak=table["weak"], seed=seed)
                    self.add(self.prompt(name, seed), role)

    def pairs(self, seed: int) -> None:
        prompts = self.recipe.prompt_jobs()
        for weak, strong in self.recipe.pairs:
            for method in self.recipe.transfers:
                upstream = self.jobs[self.prompt(weak, seed).key] if weak in prompts else self.gt(weak, seed)
                job = self.transfer(upstream, strong, seed, method, "B", "A")
                self.add(
                    job,
                    TransferRole(
                        role=JobKind.TRANSFER.value, weak=weak, strong=strong, method=method["name"], seed=seed
                    ),
                )

    def chain(self, chain: Chain, seed: int) -> None:
        upstream = self.gt(chain["models"][0], seed)
        train_split = "B"
        for step, model in enumerate(chain["models"][1:], start=1):
            predict = train_split if chain["relabel"] == "same" else OTHER_HALF[train_split]
            job = self.transfer(upstream, model, seed, chain, train_split, predict)
            upstream = self.add(
                job,
                BootstrapRole(
                    role=JobKind.BOOTSTRAP.value, chain=chain["models"], method=chain["name"], step=step, seed=seed
                ),
            )
            train_split = predict

    def part(self, part: Recipe, seed: int) -> None:
        """One part's jobs for one seed: stages, GT jobs, transfers, then bootstrap steps."""
        self.recipe = part
        self.stages(seed)
        for m in part.models:
            self.gt(m["name"], seed)
        self.pairs(seed)
        for chain in part.chains:
            self.chain(chain, seed)


def build_plan(recipe: Recipe) -> Plan:
    """Per seed, grid point and part: generative stages and prompting jobs, every GT job, then transfers,
    then bootstrap steps: a valid dependency order."""
    planner = _Planner(recipe)
    for seed in recipe.seeds:
        for point in recipe.grid_points:
            planner.grid = point.grid if recipe.axes else None
            for part in point.parts:
                planner.part(part, seed)
    return Plan(recipe, list(planner.jobs.values()))


def describe(job: Job, axes: list | None = None) -> str:
    """One line saying what a job trains on, for --dry-run and progress output; a grid's job ends with
    the swept values it was planned for (`grid.job_note`: `axes` names every value of each key)."""
    return _describe(job) + grid.job_note(job.roles, axes)


def _describe(job: Job) -> str:
    spec = job.spec
    if job.kind == JobKind.GENERATIVE:
        text = spec["generative"]["text"]
        source = "the inputs of A and B" if text == "task" else f"the text file {text['path']}"
        what = f"next tokens of {source} (epochs {spec['generative']['epochs']}, lr {spec['generative']['lr']})"
        return f"{job.kind:9} {job.model} seed={job.seed} trains on {what}; its other jobs start from it"
    if job.kind == JobKind.PROMPT:
        shots = spec["prompt"]["shots"]
        demos = f"{shots} demonstrations from {spec['train_split']}" if shots else "no demonstrations"
        return f"{job.kind:9} {job.model} seed={job.seed} trains nothing: {demos}, labels {spec['predict_split']}"
    if job.kind == JobKind.GT:
        what = f"GT labels of {spec['train_split']}"
    else:
        what = f"{job.weak_model}'s labels of {spec['train_split']} with {job.method}"
    init = f" (from generative {spec['init']['from'][:10]})" if "init" in spec else ""
    return f"{job.kind:9} {job.model} seed={job.seed} trains on {what}, labels {spec['predict_split']}{init}"


def describe_plan(plan: Plan, cached: Collection[str] = ()) -> list[str]:
    """The dry-run listing: a header, then a line per job (its state given the `cached` job keys)."""
    recipe = plan.recipe
    tasks = f", tasks {', '.join(p.name for p in recipe.parts)}" if recipe.is_suite else ""
    lines = [f"recipe {recipe.name} ({recipe.path}): {len(plan.jobs)} jobs, seeds {recipe.seeds}{tasks}"]
    if recipe.axes:  # what the grid costs over a single point (build_plan of a point plans it alone)
        lines.append(
            grid.cost_line(recipe.axes, len(recipe.points), len(plan.jobs), len(build_plan(recipe.points[0]).jobs))
        )
    for i, job in enumerate(plan.jobs, 1):
        state = "cached" if job.key in cached else "to run"
        deps = ",".join(d[:10] for d in job.deps) or "-"
        remote = "  [trust_remote_code: runs the model repo's own code]" if job.runs_remote_code else ""
        task = f"{job.roles[0].get('task')}: " if recipe.is_suite and job.roles else ""
        lines.append(f"{i:>3}. {job.short} [{state:6}] {task}{describe(job, recipe.axes)}  (after {deps}){remote}")
    return lines
