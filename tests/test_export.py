"""`w2s export`: the five Parquet files read back with pandas (and polars where installed) against the
store they came from, their schemas the same with no rows, atomic replacement, and the W&B mirror
written offline and read back from the run files W&B wrote."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import RECIPE, RECIPE_HASH, fill, insert_job

from w2s_core import cli
from w2s_core.analysis import export
from w2s_core.analysis.pgr import pgr_table
from w2s_core.analysis.wandb_mirror import role_text, steps
from w2s_core.status import JobStatus
from w2s_core.store import Store, queries

pd = pytest.importorskip("pandas")
SMALL_HASH = "s" * 64  # a second recipe using two of the filled database's jobs


@pytest.fixture
def store_dir(tmp_path) -> tuple[Path, dict[str, str]]:
    """The filled database (22 jobs, one run) plus predictions, tags, a note, and a small second recipe."""
    root = tmp_path / "results"
    hashes = fill(root)
    gt, transfer = hashes["gt m-small s0"], hashes["m-small to m-mid xent s0"]
    with Store.open(root) as store:
        store.add_predictions(gt, "test", [0.2, 0.9, 0.6], [0, 1, 1])
        store.add_predictions(transfer, "B", [0.5, 0.7], [2, 1], index=[0, 3], dists=[[0.2, 0.3, 0.5], [0.1, 0.7, 0.2]])
        store.add_tags("run", "1", ["paper"])
        store.add_tags("job", gt, ["best"])
        store.add_tags("recipe", RECIPE_HASH, ["sweep"])
        store.add_note(1, "first try")
        store.add_recipe(SMALL_HASH, "small", "small.toml", "name = 'small'")
        for h in (gt, transfer):
            role = next(p["role"] for p in queries.recipe_rows(store, RECIPE_HASH) if p["job_hash"] == h)
            store.link_job(SMALL_HASH, h, json.dumps(role))
        store.start_run(SMALL_HASH, ["w2s", "run", "small.toml"], {})
    return root, hashes


def export_to(root: Path, out: Path, *extra: str) -> int:
    return cli.main(["--results-dir", str(root), "export", *extra, "--parquet", str(out)])


def test_parquet_files_hold_what_the_store_holds(store_dir, tmp_path, capsys):
    root, hashes = store_dir
    out = tmp_path / "out"
    assert export_to(root, out, RECIPE) == 0
    printed = capsys.readouterr().out
    frames = {name: pd.read_parquet(out / f"{name}.parquet") for name in export.FILES}
    for name, frame in frames.items():  # the printed list names each file with its row count
        assert f"{out / name}.parquet" in printed and f"  {len(frame)} rows" in printed, printed
    with Store.open(root, readonly=True) as store:
        tables = {m: pgr_table(store, RECIPE_HASH, m) for m in ("acc", "auroc")}
        jobs = {j["hash"]: j for j in store.jobs(recipe_hash=RECIPE_HASH)}
        metric_rows = {h: store.metrics(h) for h in jobs}

    results = frames["results"]
    assert len(results) == len(tables["acc"]) + len(tables["auroc"]) > 0
    for metric, rows in tables.items():
        mine = results[results.metric == metric]
        for row in rows:
            same = mine[(mine.weak == row["weak"]) & (mine.strong == row["strong"]) & (mine.method == row["method"])]
            assert len(same) == 1
            got = same.iloc[0]
            assert got.pgr_mean == pytest.approx(row["pgr_mean"]) and got.pgr_lo == pytest.approx(row["pgr_lo"])
            assert got[f"w2s_{metric}"] == pytest.approx(row[f"w2s_{metric}"]) and list(got.seeds) == row["seeds"]
        other = "auroc" if metric == "acc" else "acc"
        assert mine[f"weak_{other}"].isna().all()  # the other metric's figures are null
    assert results.pgr_lo.dtype == "float64" and set(results.recipe_hash) == {RECIPE_HASH}
    assert json.loads(results.per_seed.iloc[0])[0]["seed"] == 0 and set(results.grid) == {"{}"}

    job_frame = frames["jobs"].set_index("hash")
    assert set(job_frame.index) == set(jobs)
    gt = hashes["gt m-small s0"]
    assert job_frame.loc[gt, "test_acc"] == pytest.approx(0.60) and list(job_frame.loc[gt, "tags"]) == ["best"]
    assert json.loads(job_frame.loc[gt, "spec"]) == jobs[gt]["spec"]
    assert json.loads(job_frame.loc[gt, "role"]) == {"role": "gt", "model": "m-small", "seed": 0}
    assert job_frame.loc[gt, "started_at"] == pd.Timestamp(1_700_000_000, unit="s", tz="UTC")
    assert sorted(job_frame.loc[gt, "recipes"]) == [RECIPE]  # the export is of one recipe

    metrics = frames["metrics"]
    assert len(metrics) == sum(len(rows) for rows in metric_rows.values())
    loss = metrics[(metrics.job_hash == gt) & (metrics.name == "loss")].sort_values("seq")
    assert list(loss.step) == [1, 2, 3, 4, 5] and loss.value.tolist() == pytest.approx([0.65, 0.6, 0.55, 0.5, 0.45])

    predictions = frames["predictions"]
    kclass = predictions[predictions.job_hash == hashes["m-small to m-mid xent s0"]]
    assert list(kclass.idx) == [0, 3] and list(kclass.label) == [2, 1] and list(kclass.dist.iloc[1]) == [0.1, 0.7, 0.2]
    binary = predictions[predictions.job_hash == gt]
    assert binary.prob.tolist() == [0.2, 0.9, 0.6] and binary.dist.isna().all() and set(binary.split) == {"test"}

    (run,) = frames["runs"].itertuples()
    assert run.id == 1 and list(run.tags) == ["paper"] and list(run.notes) == ["first try"] and run.recipe == RECIPE

    try:
        import polars as pl
    except ImportError:
        print("polars is not installed: read back with pandas only")
    else:
        for name, frame in frames.items():
            assert pl.read_parquet(out / f"{name}.parquet").height == len(frame)


def test_a_job_two_recipes_share_is_exported_once_with_both(store_dir, tmp_path):
    root, hashes = store_dir
    assert export_to(root, tmp_path / "out", "--all") == 0
    jobs = pd.read_parquet(tmp_path / "out" / "jobs.parquet").set_index("hash")
    assert len(jobs) == 22 and sorted(jobs.loc[hashes["gt m-small s0"], "recipes"]) == [RECIPE, "small"]
    assert len(pd.read_parquet(tmp_path / "out" / "runs.parquet")) == 2


def test_columns_keep_their_types_with_no_rows(store_dir, tmp_path):
    root, _ = store_dir
    empty = tmp_path / "empty"
    with Store.open(empty) as store:
        store.add_recipe(RECIPE_HASH, RECIPE, "grid-demo.toml", "name = 'grid-demo'")
    assert export_to(empty, tmp_path / "none", "--all") == 0
    assert export_to(root, tmp_path / "full", "--all") == 0
    for name in export.FILES:
        none, full = (pq.read_schema(tmp_path / where / f"{name}.parquet") for where in ("none", "full"))
        assert pq.read_table(tmp_path / "none" / f"{name}.parquet").num_rows == 0
        assert none.names and list(full)[: len(none)] == list(none)  # the filled one may add result columns
        assert pd.read_parquet(tmp_path / "none" / f"{name}.parquet").empty


def test_files_are_replaced_whole_and_a_failed_export_keeps_the_old_ones(store_dir, tmp_path, monkeypatch):
    root, _ = store_dir
    out = tmp_path / "out"
    out.mkdir()
    (out / "metrics.parquet").write_text("not parquet")
    assert export_to(root, out, RECIPE) == 0
    before = pq.read_table(out / "metrics.parquet").num_rows
    assert before > 0 and sorted(p.name for p in out.iterdir()) == sorted(f"{n}.parquet" for n in export.FILES)

    def broken(store, jobs):
        yield {"job_hash": "x", "seq": 0, "step": 0, "name": "loss", "value": 1.0}
        raise RuntimeError("disk full")

    monkeypatch.setattr(export, "_metric_rows", broken)
    monkeypatch.setattr(export, "BATCH_ROWS", 1)
    with Store.open(root, readonly=True) as store, pytest.raises(RuntimeError, match="disk full"):
        export.export_parquet(store, [RECIPE_HASH], out)
    assert pq.read_table(out / "metrics.parquet").num_rows == before  # the old file, whole
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.parquet" for n in export.FILES)  # no temp file


def test_export_without_a_destination_says_what_to_pass(store_dir, capsys):
    root, _ = store_dir
    assert cli.main(["--results-dir", str(root), "export"]) == 2
    err = capsys.readouterr().err
    assert "--parquet DIR" in err and "--wandb" in err


def test_event_steps_never_go_back_and_roles_read_short():
    rows = [
        {"seq": 0, "step": 1, "key": "loss", "value": 0.7},
        {"seq": 0, "step": 1, "key": "test_acc", "value": math.nan},
        {"seq": 1, "step": 3, "key": "loss", "value": 0.5},
        {"seq": 2, "step": 2, "key": "loss", "value": 0.6},  # a resumed job writing a step again
        {"seq": 3, "step": None, "key": "epoch", "value": 1.0},
    ]
    assert list(steps(rows)) == [(1, {"loss": 0.7}), (3, {"loss": 0.5}), (3, {"loss": 0.6}), (3, {"epoch": 1.0})]
    transfer = {"kind": "transfer", "model": "b", "seed": 1, "role": {"role": "transfer", "weak": "a", "strong": "b",
                "method": "xent", "seed": 1}}  # fmt: skip
    assert role_text(transfer) == "a>b xent s1"
    assert role_text({"kind": "gt", "model": "a", "seed": 0, "role": {"role": "gt"}}) == "gt a s0"


# -- the W&B mirror, offline ---------------------------------------------------------------------------


def wandb_records(path: Path):
    """The records of an offline run file (run-<id>.wandb): W&B's LevelDB-style log of protobuf records
    (a 7-byte file header, then 32 KiB blocks of chunks with a 7-byte header: crc, length, type)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, block = path.read_bytes(), 32768
    assert data[:4] == b":W&B"
    pos, chunk = 7, b""
    while pos + 7 <= len(data):
        room = block - pos % block
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if room < 7 or (kind == 0 and length == 0):
            pos += room
            continue
        chunk += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or a record's last chunk
            record = pb.Record()
            record.ParseFromString(chunk)
            chunk = b""
            yield record


def test_wandb_mirror_writes_one_offline_run_per_job(store_dir, tmp_path, monkeypatch, capsys):
    wandb = pytest.importorskip("wandb", reason="wandb is not installed: the W&B mirror's test needs it")
    root, hashes = store_dir
    for key, value in {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path), "WANDB_SILENT": "true",
                       "WANDB_DISABLE_GIT": "true"}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    try:
        assert cli.main(["--results-dir", str(root), "export", "small", "--wandb", "--project", "w2s-test"]) == 0
    finally:
        wandb.teardown()
    assert "logged 2 jobs of small as W&B runs in project w2s-test offline" in capsys.readouterr().out
    folders = sorted((tmp_path / "wandb").glob("offline-run-*"))
    gt, transfer = hashes["gt m-small s0"], hashes["m-small to m-mid xent s0"]
    assert {f.name.rsplit("-", 1)[1] for f in folders} == {gt, transfer}  # the id is the job's hash
    (run_file,) = next(f for f in folders if f.name.endswith(gt)).glob(f"run-{gt}.wandb")
    records = list(wandb_records(run_file))
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert run.run_id == gt and run.project == "w2s-test" and run.run_group == "small"
    assert run.display_name == f"{gt[:10]} gt m-small s0" and set(run.tags) == {"best", "paper"}
    assert run.notes == "first try"
    config = {u.key: json.loads(u.value_json) for u in run.config.update}
    assert config["recipe"] == "small" and config["recipe_hash"] == SMALL_HASH and config["spec"]["train_split"] == "A"
    history = [
        (r.history.step.num, {i.nested_key[0]: json.loads(i.value_json) for i in r.history.item})
        for r in records
        if r.WhichOneof("record_type") == "history"
    ]
    assert [step for step, _ in history] == [1, 2, 3, 4, 5]
    assert history[0][1]["loss"] == pytest.approx(0.65) and "test_acc" in history[1][1]
    summary = {
        u.key or u.nested_key[0]: u.value_json for r in records if r.WhichOneof("record_type") == "summary"
        for u in r.summary.update
    }  # fmt: skip
    assert json.loads(summary["test_acc"]) == pytest.approx(0.60) and json.loads(summary["status"]) == "done"


def test_wandb_mirror_without_the_package_says_how_to_install_it(store_dir, monkeypatch, capsys):
    root, _ = store_dir
    monkeypatch.setitem(__import__("sys").modules, "wandb", None)  # `import wandb` raises ImportError
    assert cli.main(["--results-dir", str(root), "export", "--all", "--wandb"]) == 2
    assert "pip install 'w2s[wandb]'" in capsys.readouterr().err


def test_a_grid_point_s_swept_keys_are_columns(tmp_path):
    """Roles planned for grid points (`"grid": {"lr": ...}`) give a results row per point, with `lr` as a
    number column of its own and the whole point as JSON in `grid`."""
    root = tmp_path / "results"
    with Store.open(root) as store:
        store.add_recipe(RECIPE_HASH, "lr-sweep", "lr-sweep.toml", "name = 'lr-sweep'")
        for n, (lr, weak_acc, w2s_acc) in enumerate(((1e-5, 0.6, 0.7), (5e-5, 0.6, 0.65))):
            grid = {"lr": lr}
            roles = [
                ({"role": "gt", "model": "small", "seed": 0, "grid": grid}, "gt", "small", weak_acc),
                ({"role": "gt", "model": "big", "seed": 0, "grid": grid}, "gt", "big", 0.8),
                ({"role": "transfer", "weak": "small", "strong": "big", "method": "xent", "seed": 0, "grid": grid},
                 "transfer", "big", w2s_acc),
            ]  # fmt: skip
            for i, (role, kind, model, acc) in enumerate(roles):
                h = f"{n}{i}" + "c" * 62
                insert_job(store, h, kind, model, 0, role, RECIPE_HASH, {"train": {"lr": lr}})
                store.set_job_status(h, JobStatus.DONE)
                store.set_results(h, {"test_acc": acc, "test_auroc": acc})
    assert export_to(root, tmp_path / "out", "--all") == 0
    results = pd.read_parquet(tmp_path / "out" / "results.parquet")
    acc = results[results.metric == "acc"].sort_values("lr")
    assert acc.lr.dtype == "float64" and acc.lr.tolist() == [1e-5, 5e-5]
    assert acc.pgr_mean.tolist() == pytest.approx([0.5, 0.25])
    assert [json.loads(g) for g in acc.grid] == [{"lr": 1e-5}, {"lr": 5e-5}]
