"""Validation and early stopping (issue 9, item 7): `[train] val_size` and `select`, and the oracle figure.

- The validation slice is held out of the training half (never trained on) and labelled the way the
  job is supervised: ground truth for a GT job, the upstream job's predictions for a transfer.
- `select = "val_auroc" | "val_loss"` keeps the eval point with the best validation figure: its
  predictions are written (and so label the downstream jobs) and its test figures are the result's.
- The oracle is the best test accuracy over the eval points, reported for every job.
- `select = "final"` (the default) changes nothing: same job keys, same predictions, same result.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import run_w2s, train_in_process

from w2s_core.data import make_splits, val_rows
from w2s_core.errors import InputError
from w2s_core.jobdir import EVENTS, Event, JobDir, Result
from w2s_core.spec.plan import build_plan
from w2s_core.spec.recipe import parse_recipe
from w2s_core.spec.schema import SELECT, UNHASHED_TRAIN_DEFAULTS

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

HALF, VAL = 64, 16
RECIPE = f"""
[data]
name = "synthetic"
n_train = {2 * HALF}
n_test = 64

[train]
epochs = 10
lr = 0.01
batch_size = 16
minibatch_size = 16
max_length = 32
eval_every = 1
{{train}}

[[models]]
name = "weak"
path = "tiny-random-gpt2"
tiny = {{{{ hidden_size = 16, num_layers = 1 }}}}

[[models]]
name = "strong"
path = "tiny-random-bert"
tiny = {{{{ hidden_size = 16, num_layers = 1 }}}}
"""
SELECTING = f'val_size = {VAL}\nselect = "val_auroc"'


def parse(train: str = "", text: str | None = None):
    text = text if text is not None else RECIPE.format(train=train)
    return parse_recipe(tomllib.loads(text), Path("es.toml"), text)


def jobs(train: str = ""):
    plan = build_plan(parse(train)).jobs
    return next(j for j in plan if j.kind == "gt" and j.model == "weak"), next(j for j in plan if j.kind == "transfer")


def events(job_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (job_dir / EVENTS).read_text().splitlines()]


class Recorder:
    """Runs jobs in this process, recording every eval point and what `hold_out` did."""

    def __init__(self, monkeypatch):
        from w2s_core.training import loop, progress

        self.points, self.held, self.trained_on = [], {}, []
        real_eval, real_hold, real_forward = loop.eval_point, loop.hold_out, loop.forward

        def eval_point(lp, keep_predict):
            point = real_eval(lp, keep_predict)
            self.points.append(point)
            return point

        def hold_out(setup, labels, rows):
            full = list(setup.inputs["train"])
            out = real_hold(setup, labels, rows)
            self.held = {"full": full, "rows": rows, "labels": labels, "inputs": dict(setup.inputs), "out": out}
            return out

        def forward(setup, module, items):  # the training passes only: evaluation has its own forward
            self.trained_on.extend(items)
            return real_forward(setup, module, items)

        monkeypatch.setattr(loop, "eval_point", eval_point)  # the final point
        monkeypatch.setattr(progress, "eval_point", eval_point)  # the points during training
        monkeypatch.setattr(loop, "hold_out", hold_out)
        monkeypatch.setattr(loop, "forward", forward)

    def run(self, job_dir: Path, spec: dict) -> dict:
        self.points, self.held, self.trained_on = [], {}, []
        train_in_process(job_dir, spec)  # runs w2s_core.training.loop, whose functions __init__ patched
        return {"points": self.points, "held": self.held, "trained_on": self.trained_on}


@pytest.fixture(scope="module")
def selecting(tmp_path_factory):
    """The weak GT job and the transfer from it, both with a validation slice and select = "val_auroc"."""
    root = tmp_path_factory.mktemp("jobs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("W2S_CACHE", str(tmp_path_factory.mktemp("cache")))
        rec = Recorder(mp)
        weak, transfer = jobs(SELECTING)
        runs = {
            "weak": rec.run(root / "weak", weak.spec),
            "transfer": rec.run(root / "transfer", {**transfer.spec, "upstream_dir": str(root / "weak")}),
        }
        yield root, runs, rec, weak


# --- the validation slice ----------------------------------------------------------------------


def test_val_rows_are_seeded_and_leave_training_examples():
    rows = val_rows(HALF, VAL, 0, "B")
    assert rows == val_rows(HALF, VAL, 0, "B") == sorted(set(rows)) and len(rows) == VAL
    assert all(0 <= i < HALF for i in rows)
    assert rows != val_rows(HALF, VAL, 1, "B") and rows != val_rows(HALF, VAL, 0, "A")
    assert val_rows(HALF, 0, 0, "B") == []
    with pytest.raises(InputError, match="val_size = 64 leaves no training examples"):
        val_rows(HALF, HALF, 0, "B")


def test_the_val_slice_is_never_trained_on(selecting):
    _, runs, _, _ = selecting
    for run in runs.values():
        held = run["held"]
        rows, full, inputs = held["rows"], held["full"], held["inputs"]
        assert len(rows) == VAL
        assert inputs["val"] == [full[i] for i in rows]
        assert inputs["train"] == [full[i] for i in range(len(full)) if i not in set(rows)]
        val_ids = {id(x) for x in inputs["val"]}
        assert run["trained_on"] and not any(id(x) in val_ids for x in run["trained_on"])


def test_the_val_slice_is_labelled_by_the_jobs_supervision(selecting):
    root, runs, _, weak = selecting
    # GT job: the ground truth of its training half's held rows, one-hot
    held = runs["weak"]["held"]
    fit, val = held["out"]
    truth = make_splits(weak.spec["data"], weak.spec["seed"])[weak.spec["train_split"]].labels
    assert torch.equal(val[:, 1], torch.tensor([float(truth[i]) for i in held["rows"]]))
    assert torch.equal(val[:, 0], 1 - val[:, 1])
    assert len(fit) == HALF - VAL and len(val) == VAL
    # transfer: the weak job's predictions of half B at the held rows, i.e. weak labels, not ground truth
    held = runs["transfer"]["held"]
    _, val = held["out"]
    weak_b = JobDir(root / "weak").read_predictions()[weak.spec["predict_split"]]
    expected = torch.tensor(weak_b["probs"], dtype=torch.float32)[held["rows"]]
    assert torch.equal(val[:, 1], expected)
    gt = torch.tensor([weak_b["labels"][i] for i in held["rows"]], dtype=torch.float32)
    assert not torch.equal((val[:, 1] > 0.5).float(), gt)  # the weak model errs on some: these are not GT labels
    assert JobDir(root / "transfer").read_result()[Result.N_VAL] == VAL


# --- selection and the oracle ---------------------------------------------------------------


def first_best(evts: list[dict], key: str, sign: int) -> int:
    """The step of the first event with the best value of `key` (sign +1: highest, -1: lowest)."""
    scored = [e for e in evts if key in e and not math.isnan(e[key])]
    best = max(sign * e[key] for e in scored)
    return next(e[Event.STEP] for e in scored if sign * e[key] == best)


def test_selection_keeps_the_eval_point_with_the_best_val_auroc(selecting):
    root, runs, _, weak = selecting
    for name, run in runs.items():
        result, evts = JobDir(root / name).read_result(), events(root / name)
        chosen = first_best(evts, Event.VAL_AUROC, 1)
        assert result[Result.SELECTED_STEP] == chosen
        point = next(p for p in run["points"] if p.step == chosen)
        preds = JobDir(root / name).read_predictions()
        assert preds["test"]["probs"] == point.probs["test"]
        split = weak.spec["predict_split"] if name == "weak" else "A"
        assert preds[split]["probs"] == point.probs["predict"]  # the split downstream jobs label with
        assert result[Result.TEST_ACC] == next(e[Event.TEST_ACC] for e in evts if e[Event.STEP] == chosen)
        final = [e for e in evts if e.get(Event.KIND) == Event.FINAL]
        assert len(final) == 1 and result[Result.FINAL_TEST_ACC] == final[0][Event.TEST_ACC]
    # the weak job overfits its 48 examples: it keeps an earlier checkpoint, whose predictions differ
    result = JobDir(root / "weak").read_result()
    assert result[Result.SELECTED_STEP] < result["steps"]
    last = runs["weak"]["points"][-1]
    assert last.step == result["steps"]
    assert last.probs["predict"] != JobDir(root / "weak").read_predictions()["B"]["probs"]


def test_downstream_jobs_train_on_the_selected_checkpoint(selecting):
    root, runs, _, weak = selecting
    held = runs["transfer"]["held"]
    kept = JobDir(root / "weak").read_predictions()["B"]["probs"]
    assert torch.equal(held["labels"][:, 1], torch.tensor(kept, dtype=torch.float32))


def test_the_oracle_is_the_best_test_accuracy_of_the_eval_points(selecting):
    root, _, _, _ = selecting
    for name in ("weak", "transfer"):
        result, evts = JobDir(root / name).read_result(), events(root / name)
        assert result[Result.ORACLE_TEST_ACC] == max(e[Event.TEST_ACC] for e in evts if Event.TEST_ACC in e)
        assert result[Result.ORACLE_STEP] == first_best(evts, Event.TEST_ACC, 1)
    weak = JobDir(root / "weak").read_result()
    assert weak[Result.ORACLE_TEST_ACC] > weak[Result.FINAL_TEST_ACC]  # it can tell more than the last step


def test_select_val_loss_keeps_the_lowest_val_loss(selecting, tmp_path):
    root, _, rec, weak = selecting
    spec = {**weak.spec, "train": {**weak.spec["train"], "select": "val_loss"}}
    rec.run(tmp_path / "loss", spec)
    result, evts = JobDir(tmp_path / "loss").read_result(), events(tmp_path / "loss")
    assert result[Result.SELECTED_STEP] == first_best(evts, Event.VAL_LOSS, -1)
    assert result[Event.VAL_LOSS] == min(e[Event.VAL_LOSS] for e in evts if Event.VAL_LOSS in e)
    # the validation figures are emitted at every eval point and the last step
    assert sum(Event.VAL_AUROC in e for e in evts) == result["steps"] + 1


def test_validation_under_ddp_selects_as_one_process(tmp_path):
    """Two processes gather the validation slice's logits: the same figures and the same kept step."""
    weak, _ = jobs(SELECTING)
    env = dict(
        os.environ,
        PYTHONPATH=str(Path(__file__).resolve().parent.parent),
        OMP_NUM_THREADS="1",
        HF_HUB_OFFLINE="1",
        ACCELERATE_USE_CPU="1",
        W2S_CACHE=str(tmp_path / "cache"),
    )
    results = []
    # batch_size is the effective batch whatever the process count (training/world.py): the same 16
    # examples per step either way, 8 per pass on one process, 4 per process and pass on two
    for n, minibatch in ((1, 8), (2, 4)):
        job_dir = tmp_path / f"p{n}"
        JobDir(job_dir).write_spec(
            {**weak.spec, "train": {**weak.spec["train"], "batch_size": 16, "minibatch_size": minibatch}}
        )
        launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(n)] if n > 1 else []
        done = subprocess.run(
            [sys.executable, *launcher, "-m", "w2s_core.training", str(job_dir)],
            env=env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert JobDir(job_dir).read_env()["num_processes"] == n
        results.append(JobDir(job_dir).read_result())
    one, two = results
    assert one[Result.N_VAL] == two[Result.N_VAL] == VAL
    assert one[Result.SELECTED_STEP] == two[Result.SELECTED_STEP]
    for key in (Event.VAL_LOSS, Event.VAL_AUROC, Event.VAL_ACC):
        assert one[key] == pytest.approx(two[key], abs=1e-5)


# --- select = "final": nothing changes ------------------------------------------------------------


def test_select_final_keeps_job_keys():
    variants = ("", 'val_size = 0\nselect = "final"', f"val_size = {VAL}", 'val_size = 8\nselect = "val_loss"')
    keys = {train: [j.key for j in build_plan(parse(train)).jobs] for train in variants}
    assert keys[""] == keys['val_size = 0\nselect = "final"']
    assert not set(keys[""]) & set(keys[f"val_size = {VAL}"])
    assert not set(keys[f"val_size = {VAL}"]) & set(keys['val_size = 8\nselect = "val_loss"'])
    assert UNHASHED_TRAIN_DEFAULTS["val_size"] == 0 and UNHASHED_TRAIN_DEFAULTS["select"] == "final"


def test_select_final_gives_the_same_outputs_as_a_job_without_the_keys(selecting, tmp_path):
    _, _, rec, _ = selecting
    weak, _ = jobs('val_size = 0\nselect = "final"')
    bare = {**weak.spec, "train": {k: v for k, v in weak.spec["train"].items() if k not in ("val_size", "select")}}
    rec.run(tmp_path / "explicit", weak.spec)
    points = rec.run(tmp_path / "bare", bare)["points"]
    a, b = JobDir(tmp_path / "explicit"), JobDir(tmp_path / "bare")
    assert a.predictions.read_bytes() == b.predictions.read_bytes()
    ra, rb = a.read_result(), b.read_result()
    ra.pop("train_seconds")
    rb.pop("train_seconds")
    assert ra == rb
    strip = [{k: v for k, v in e.items() if k != Event.EXAMPLES_PER_S} for e in events(a.path)]
    assert strip == [{k: v for k, v in e.items() if k != Event.EXAMPLES_PER_S} for e in events(b.path)]
    # the last step is kept; the oracle is still reported; no validation figures without a slice
    assert ra[Result.SELECTED_STEP] == ra["steps"] and ra[Result.TEST_ACC] == ra[Result.FINAL_TEST_ACC]
    assert ra[Result.ORACLE_TEST_ACC] == max(p.figures[Event.TEST_ACC] for p in points)
    assert Result.N_VAL not in ra and not any(Event.VAL_AUROC in e for e in events(a.path))
    # with select = "final" no eval point before the last predicts the predict split
    assert all("predict" not in p.probs for p in points[:-1]) and "predict" in points[-1].probs


# --- recipe errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ('select = "best"', "train.select: expected one of 'final', 'val_loss', 'val_auroc', got 'best'"),
        (
            'select = "val_auroc"',
            "train.select: 'val_auroc' keeps the checkpoint with the best validation figure, but val_size is 0",
        ),
        (f"val_size = {HALF}", f"train.val_size: {HALF} leaves no training examples"),
        ("val_size = -1", "train.val_size: expected an integer >= 0, got -1"),
        ('val_size = 8\nselect = "val_loss"', "train.eval_every: select = 'val_loss' chooses between eval points"),
    ],
)
def test_recipe_errors(train, message):
    text = RECIPE.format(train=train)
    if "val_loss" in train:  # no eval points to choose between
        text = text.replace("eval_every = 1", "eval_every = 0")
    with pytest.raises(InputError) as exc:
        parse(text=text)
    assert message in str(exc.value) and "es.toml" in str(exc.value)
    assert str(exc.value).count("\n  - ") == 1  # one problem, said once though both models share [train]


def test_a_models_own_setting_is_named_in_the_error():
    text = RECIPE.format(train='val_size = 8\nselect = "val_auroc"').replace(
        'name = "strong"', 'name = "strong"\neval_every = 0'
    )
    with pytest.raises(InputError, match="models.strong.eval_every: select = 'val_auroc'"):
        parse(text=text)


def test_select_choices_agree_across_the_torch_line():
    from w2s_core.training.evaluate import FINAL, SELECT_BY

    assert set(SELECT) == {FINAL, *SELECT_BY}


# --- end to end: w2s results --------------------------------------------------------------------


E2E = """
seeds = [0]
[data]
name = "synthetic"
n_train = 600
n_test = 200
[train]
epochs = 3
lr = 0.005
batch_size = 32
minibatch_size = 32
max_length = 32
eval_every = 3
val_size = 60
select = "val_auroc"
[[models]]
name = "gpt2-h16"
path = "tiny-random-gpt2"
tiny = { hidden_size = 16, num_layers = 1 }
[[models]]
name = "bert-h64"
path = "tiny-random-bert"
tiny = { hidden_size = 64, num_layers = 2 }
[[transfer]]
loss = "xent"
"""


def test_results_report_final_selected_and_oracle_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("W2S_CACHE", str(tmp_path / "cache"))
    recipe = tmp_path / "es.toml"
    recipe.write_text(E2E)
    done = run_w2s(tmp_path / "results", "run", str(recipe))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = json.loads(run_w2s(tmp_path / "results", "results", "--json").stdout)
    (row,) = [r for r in rows if r["kind"] == "transfer"]
    for who in ("weak", "w2s", "ceiling"):
        for which in ("final", "selected", "oracle"):
            assert 0 <= row[f"{who}_acc_{which}"] <= 1, (who, which)
        assert row[f"{who}_acc_oracle"] >= max(row[f"{who}_acc_final"], row[f"{who}_acc_selected"]) - 1e-12
    assert row["w2s_acc_selected"] == row["w2s_acc"]
    for which in ("final", "selected", "oracle"):
        gap = row[f"ceiling_acc_{which}"] - row[f"weak_acc_{which}"]
        if gap:  # (a zero gap has no PGR: null)
            expected = (row[f"w2s_acc_{which}"] - row[f"weak_acc_{which}"]) / gap
            assert row[f"pgr_{which}"] == pytest.approx(expected), which
        else:
            assert row[f"pgr_{which}"] is None
