"""The SQLite store: migrations, jobs, incremental event ingest, concurrent readers, clear errors."""

import json
import math
import random
import shutil
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from w2s_core.errors import InputError, W2SError
from w2s_core.status import FINISHED_RUN, JobStatus
from w2s_core.store import Store, connection, schema
from w2s_core.store.schema import Migrations


def make_job(job_hash="j1", **extra):
    job = {"hash": job_hash, "kind": "gt", "model": "gpt2", "seed": 0, "spec": {"lr": 1e-4, "epochs": 2}}
    return {**job, **extra}


def write_events(path: Path, events, mode="a", tail=b""):
    with open(path, mode + "b") as f:
        for event in events:
            f.write((event if isinstance(event, str) else json.dumps(event)).encode() + b"\n")
        f.write(tail)


def random_events(rng, start_step, n):
    events = []
    for i in range(n):
        event = {"step": start_step + i, "loss": rng.random(), "lr": rng.random() * 1e-4, "epoch": i % 3}
        if rng.random() < 0.3:
            event.update({"event": "eval", "test_acc": rng.random(), "is_best": rng.random() < 0.5})
        events.append(event)
    return events


def parse_file(path: Path) -> set[tuple]:
    """Direct reference: (seq, step, key, value) of every numeric field on complete lines."""
    rows = set()
    for seq, raw in enumerate(path.read_bytes().split(b"\n")[:-1]):
        try:
            event = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(event, dict):
            continue
        for key, value in event.items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                rows.add((seq, event.get("step"), key, float(value)))
    return rows


def stored(st: Store, job="j1") -> list[tuple]:
    return [(r["seq"], r["step"], r["key"], r["value"]) for r in st.metrics(job)]


@pytest.fixture
def st(tmp_path):
    with Store.open(tmp_path / "res") as s:
        yield s


# -- opening and migrations ---------------------------------------------------------------------


def test_fresh_db_has_schema_wal_and_version(tmp_path):
    with Store.open(tmp_path / "a" / "res") as s:
        assert s.path == (tmp_path / "a" / "res" / "w2s.db").resolve() and s.path.is_file()
        assert s.root == s.path.parent
        tables = set(s.db.table_names())
        expected = {"recipes", "runs", "jobs", "recipe_jobs", "metrics", "results", "predictions", "ingest"}
        assert expected <= tables
        assert s.db.execute("PRAGMA user_version").fetchone()[0] == len(schema.MIGRATIONS)
        assert s.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert s.db.execute("PRAGMA busy_timeout").fetchone()[0] == connection.BUSY_TIMEOUT_MS


def test_version0_db_is_upgraded(tmp_path):
    (tmp_path / "res").mkdir()
    sqlite3.connect(tmp_path / "res" / "w2s.db").execute("PRAGMA user_version = 0").connection.close()
    with Store.open(tmp_path / "res") as s:
        assert s.db.execute("PRAGMA user_version").fetchone()[0] == schema.schema_version()
        s.upsert_job(make_job())
        assert s.get_job("j1")["model"] == "gpt2"


def test_older_db_gets_new_migrations_and_keeps_data(tmp_path, monkeypatch):
    with Store.open(tmp_path) as s:
        s.add_recipe("r1", "demo", "demo.toml", "x = 1")
    old = schema.schema_version()

    def add_notes(conn):
        conn.execute("CREATE TABLE notes (job_hash TEXT, note TEXT)")

    monkeypatch.setattr(schema, "MIGRATIONS", Migrations([*schema.MIGRATIONS.steps, add_notes]))
    with Store.open(tmp_path) as s:
        assert s.db.execute("PRAGMA user_version").fetchone()[0] == old + 1
        assert "notes" in s.db.table_names()
        assert [r["hash"] for r in s.recipes()] == ["r1"]


def test_v1_db_gains_the_supervision_columns_and_keeps_its_jobs(tmp_path, monkeypatch):
    monkeypatch.setattr(schema, "MIGRATIONS", Migrations(schema.MIGRATIONS.steps[:1]))
    with Store.open(tmp_path) as s:  # a database written before detached runs existed
        s.upsert_job(make_job(status="done", pid=42))
        with s.transaction() as conn:  # as v1 code wrote it (no submission column yet)
            run_id = conn.execute("INSERT INTO runs (started_at, status, argv) VALUES (1, 'done', '[]')").lastrowid
    monkeypatch.undo()
    with Store.open(tmp_path) as s:
        job = s.get_job("j1")
        assert (job["status"], job["pid"], job["pgid"], job["proc_start"], job["signal"]) == (
            "done",
            42,
            None,
            None,
            None,
        )
        s.set_job_status("j1", "failed", signal=9, pgid=42, proc_start=1.5, device="cuda:0", launch={"parallel": 2})
        assert s.get_job("j1")["launch"] == {"parallel": 2} and s.get_job("j1")["signal"] == 9
        assert s.run_of_submission("x") is None and [r["id"] for r in s.runs()] == [run_id]
        s.start_run(None, [], {}, submission="x")
        with pytest.raises(W2SError):  # a submission is applied once
            s.start_run(None, [], {}, submission="x")


def test_failed_migration_rolls_back_everything(tmp_path, monkeypatch):
    Store.open(tmp_path).close()
    old = schema.schema_version()

    def half_done(conn):
        conn.execute("CREATE TABLE half (x)")
        raise sqlite3.OperationalError("boom")

    monkeypatch.setattr(schema, "MIGRATIONS", Migrations([*schema.MIGRATIONS.steps, half_done]))
    with pytest.raises(W2SError, match="boom"):
        Store.open(tmp_path)
    conn = sqlite3.connect(tmp_path / "w2s.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == old
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'half'").fetchone()[0] == 0
    conn.close()


def test_migrations_are_numbered_in_order():
    names = [m.__name__ for m in schema.MIGRATIONS.steps]
    assert [n[:5] for n in names] == [f"m{i:03d}_" for i in range(1, len(names) + 1)]
    assert schema.schema_version() == len(names) == schema.MIGRATIONS.version


def test_status_checks_follow_the_status_enums(st):
    st.upsert_job(make_job())
    for status in JobStatus:
        st.set_job_status("j1", status)
        assert st.get_job("j1")["status"] == status.value
    run = st.start_run(None, [], {})
    for status in FINISHED_RUN:
        st.finish_run(run, status)
        assert st.runs(status)[0]["status"] == status.value
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"), st.transaction() as conn:
        conn.execute("UPDATE jobs SET status = 'exploded'")
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"), st.transaction() as conn:
        conn.execute("UPDATE runs SET status = 'exploded'")


def test_newer_db_is_refused(tmp_path):
    Store.open(tmp_path).close()
    newer = schema.schema_version() + 3
    sqlite3.connect(tmp_path / "w2s.db").execute(f"PRAGMA user_version = {newer}").connection.close()
    for readonly in (False, True):
        with pytest.raises(W2SError, match=f"schema version {newer}, newer"):
            Store.open(tmp_path, readonly=readonly)


def test_readonly_refuses_missing_and_outdated_db(tmp_path):
    with pytest.raises(InputError, match=str(tmp_path / "nope" / "w2s.db")):
        Store.open(tmp_path / "nope", readonly=True)
    assert not (tmp_path / "nope").exists()
    sqlite3.connect(tmp_path / "w2s.db").execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(W2SError, match="older"):
        Store.open(tmp_path, readonly=True)


def test_corrupt_db_names_the_path(tmp_path):
    (tmp_path / "w2s.db").write_bytes(b"definitely not sqlite\n" * 200)
    for readonly in (False, True):
        with pytest.raises(W2SError, match="not a database") as info:
            Store.open(tmp_path, readonly=readonly)
        assert str(tmp_path / "w2s.db") in str(info.value)


def test_results_dir_that_cannot_be_created(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("I am a file")
    with pytest.raises(InputError, match=str(blocker)):
        Store.open(blocker)


# -- recipes, runs, jobs ------------------------------------------------------------------------


def test_recipes_and_runs(st):
    st.add_recipe("r1", "demo", "recipes/demo.toml", "a = 1")
    st.add_recipe("r1", "demo", "moved/demo.toml", "a = 1")
    assert [(r["hash"], r["path"], r["text"]) for r in st.recipes()] == [("r1", "moved/demo.toml", "a = 1")]
    run = st.start_run("r1", ["w2s", "run", "demo.toml"], {"git": "abc", "dirty": False})
    assert st.runs()[0]["status"] == "running" and st.runs()[0]["finished_at"] is None
    st.finish_run(run, "done")
    (row,) = st.runs()
    assert row["id"] == run and row["status"] == "done" and row["finished_at"] >= row["started_at"]
    assert row["argv"] == ["w2s", "run", "demo.toml"] and row["provenance"] == {"git": "abc", "dirty": False}
    assert st.start_run("r1", [], {}) == run + 1
    with pytest.raises(ValueError):
        st.finish_run(run, "running")
    with pytest.raises(W2SError, match="no run 999"):
        st.finish_run(999, "failed")


def test_upsert_job_updates_only_given_columns(st):
    st.upsert_job(make_job(recipe_hash="r1", chain=["gpt2", "gpt2-medium"], loss=None))
    job = st.get_job("j1")
    assert job["status"] == "planned" and job["spec"] == {"lr": 1e-4, "epochs": 2}
    assert job["chain"] == ["gpt2", "gpt2-medium"] and job["loss"] is None
    st.upsert_job({"hash": "j1", "recipe_hash": "r2", "status": "queued", "loss": "xent"})
    job = st.get_job("j1")
    assert (job["status"], job["loss"], job["model"], job["recipe_hash"]) == ("queued", "xent", "gpt2", "r1")
    assert job["spec"] == {"lr": 1e-4, "epochs": 2}
    raw = st.db.execute("SELECT spec FROM jobs").fetchone()[0]
    assert json.loads(raw) == {"lr": 1e-4, "epochs": 2}
    assert st.get_job("missing") is None
    with pytest.raises(ValueError, match="colour"):
        st.upsert_job({"hash": "j1", "colour": "red"})
    with pytest.raises(W2SError, match="NOT NULL"):
        st.upsert_job({"hash": "j2", "kind": "gt"})


def test_jobs_filters_by_linked_recipe_and_status(st):
    for h, kind in [("a", "gt"), ("b", "gt"), ("c", "transfer")]:
        st.upsert_job(make_job(h, kind=kind, recipe_hash="r1"))
        st.link_job("r1", h, kind)
    st.link_job("r2", "a", "gt")
    st.link_job("r2", "a", "weak")
    st.link_job("r2", "a", "weak")
    st.set_job_status("b", "queued")
    assert [j["hash"] for j in st.jobs()] == ["a", "b", "c"]
    assert [j["hash"] for j in st.jobs("r2")] == ["a"]
    assert [j["hash"] for j in st.jobs("r1", status="planned")] == ["a", "c"]
    assert [j["hash"] for j in st.jobs(status=["queued", "planned"])] == ["a", "b", "c"]
    roles = st.db.execute("SELECT role FROM recipe_jobs WHERE recipe_hash = 'r2' ORDER BY role").fetchall()
    assert roles == [("gt",), ("weak",)]


def test_set_job_status_stamps_and_resets(st):
    st.upsert_job(make_job())
    st.set_job_status("j1", "running", pid=4242, run_id=7)
    job = st.get_job("j1")
    assert (job["status"], job["pid"], job["run_id"]) == ("running", 4242, 7) and job["started_at"]
    st.set_job_status("j1", "failed", exit_code=3, error="CUDA out of memory")
    failed = st.get_job("j1")
    assert failed["finished_at"] >= failed["started_at"] and failed["exit_code"] == 3
    st.set_job_status("j1", "running", pid=5)
    retry = st.get_job("j1")
    assert (retry["finished_at"], retry["exit_code"], retry["error"]) == (None, None, None)
    st.set_job_status("j1", "skipped", error="an upstream job failed")
    assert st.get_job("j1")["finished_at"] >= retry["started_at"]
    with pytest.raises(ValueError, match="status"):
        st.set_job_status("j1", "exploded")
    with pytest.raises(W2SError, match="no job nope"):
        st.set_job_status("nope", "done")


def test_job_dirs_are_stored_relative_and_follow_a_move(tmp_path):
    with Store.open(tmp_path / "old") as s:
        s.upsert_job(make_job(dir=s.root / "jobs" / "j1"))
        s.upsert_job(make_job("j2", dir="jobs/j2"))
        raw = dict(s.db.execute("SELECT hash, dir FROM jobs").fetchall())
        assert raw == {"j1": "jobs/j1", "j2": "jobs/j2"}
        with pytest.raises(ValueError, match="outside"):
            s.upsert_job({"hash": "j1", "dir": tmp_path / "elsewhere"})
    shutil.move(tmp_path / "old", tmp_path / "new")
    with Store.open(tmp_path / "new", readonly=True) as s:
        assert s.get_job("j1")["dir"] == str((tmp_path / "new" / "jobs" / "j1").resolve())
        assert [j["dir"] for j in s.jobs()][1] == str((tmp_path / "new" / "jobs" / "j2").resolve())


# -- event ingest -------------------------------------------------------------------------------


def test_ingest_is_incremental_and_idempotent(st):
    rng = random.Random(0)
    events = st.root / "jobs" / "j1" / "events.jsonl"
    events.parent.mkdir(parents=True)
    write_events(events, random_events(rng, 0, 20) + ["{not json", "", "[1, 2]"] + random_events(rng, 20, 5))
    written = st.ingest_events("j1", events)
    assert set(stored(st)) == parse_file(events) and written == len(parse_file(events))
    assert len(stored(st)) == written  # no duplicate rows
    assert st.ingest_events("j1", events) == 0 and set(stored(st)) == parse_file(events)

    write_events(events, random_events(rng, 25, 10), tail=b'{"step": 35, "loss": 0.')
    st.ingest_events("j1", events)
    assert set(stored(st)) == parse_file(events) and len(stored(st)) == len(parse_file(events))
    assert all(seq < 38 for seq, *_ in stored(st))  # the partial line 38 waits

    write_events(events, [], tail=b"5}\n")
    assert st.ingest_events("j1", events) == 1
    assert (38, 35, "loss", 0.5) in stored(st)
    assert st.ingest_events("j1", events) == 0
    assert stored(st) == sorted(parse_file(events), key=lambda r: (r[0], r[2]))
    state = st.db.execute('SELECT file, "offset", line, skipped FROM ingest').fetchone()
    assert state == ("jobs/j1/events.jsonl", events.stat().st_size, 39, 2)


def test_ingest_without_offset_does_not_duplicate(st):
    events = st.root / "events.jsonl"
    write_events(events, random_events(random.Random(1), 0, 15))
    first = st.ingest_events("j1", events)
    st.db.execute("DELETE FROM ingest")
    assert st.ingest_events("j1", events) == first
    assert len(stored(st)) == first and set(stored(st)) == parse_file(events)


def test_ingest_restarts_when_file_is_rewritten(st):
    events = st.root / "events.jsonl"
    write_events(events, random_events(random.Random(2), 0, 30))
    st.ingest_events("j1", events)
    write_events(events, random_events(random.Random(3), 0, 4), mode="w")
    st.ingest_events("j1", events)
    assert set(stored(st)) == parse_file(events) and len(stored(st)) == len(parse_file(events))


def test_ingest_missing_file_and_special_values(st):
    assert st.ingest_events("j1", st.root / "not-yet.jsonl") == 0
    events = st.root / "e.jsonl"
    events.write_text('{"step": 1, "loss": NaN, "grad": Infinity, "ok": true, "note": "x"}\n{"loss": 2}\n')
    assert st.ingest_events("j1", "e.jsonl") == 3  # relative to the results dir
    rows = st.metrics("j1")
    keys = [(r["seq"], r["step"], r["key"]) for r in rows]
    assert keys == [(0, 1, "grad"), (0, 1, "loss"), (1, None, "loss")]
    assert rows[0]["value"] == math.inf and math.isnan(rows[1]["value"]) and rows[2]["value"] == 2.0
    assert [r["seq"] for r in st.metrics("j1", key="loss")] == [0, 1]


# -- results and predictions --------------------------------------------------------------------


def test_results_merge(st):
    st.set_results("j1", {"test_acc": 0.7, "agree": 0.9})
    st.set_results("j1", {"test_acc": 0.75, "test_auroc": float("nan")})
    res = st.results("j1")
    assert res["test_acc"] == 0.75 and res["agree"] == 0.9 and math.isnan(res["test_auroc"])
    assert st.results("other") == {}


def test_results_keep_nulls_as_nan_and_leave_out_what_is_not_a_number(st):
    """result.json may say a figure is missing (null) or carry text; neither may break recording a job."""
    st.set_results(
        "j1",
        {
            "test_acc": 0.7,
            "final_test_acc": 0.68,
            "oracle_test_acc": None,
            "oracle_step": 40,
            "select": "val_loss",
            "dropped": {"test": 3},
        },
    )
    res = st.results("j1")
    assert set(res) == {"test_acc", "final_test_acc", "oracle_test_acc", "oracle_step"}
    assert math.isnan(res["oracle_test_acc"]) and res["oracle_step"] == 40.0 and res["final_test_acc"] == 0.68


def test_predictions_roundtrip_and_replace(st):
    rng = random.Random(4)
    probs = [rng.random() for _ in range(5000)]
    labels = [int(p > 0.4) for p in probs]
    st.add_predictions("j1", "test", probs, labels)
    st.add_predictions("j1", "B", probs[:10])
    assert st.predictions("j1", "test") == (probs, labels)
    assert st.predictions("j1", "B") == (probs[:10], [None] * 10)
    st.add_predictions("j1", "test", probs[:3], labels[:3])
    assert st.predictions("j1", "test") == (probs[:3], labels[:3])
    with pytest.raises(ValueError, match="split"):
        st.add_predictions("j1", "C", probs)
    with pytest.raises(ValueError, match="labels"):
        st.add_predictions("j1", "A", probs, labels[:2])
    assert st.predictions("j1", "A") == ([], [])


# -- concurrency --------------------------------------------------------------------------------


def test_reader_sees_committed_state_while_writer_writes(tmp_path):
    writer = Store.open(tmp_path)
    writer.upsert_job(make_job("a"))
    reader = Store.open(tmp_path, readonly=True)
    with writer.transaction():
        writer.upsert_job(make_job("b"))
        assert [j["hash"] for j in reader.jobs()] == ["a"]  # no lock error, no dirty read
    assert [j["hash"] for j in reader.jobs()] == ["a", "b"]
    with pytest.raises(W2SError, match="read-only"):
        reader.upsert_job(make_job("c"))
    reader.close()
    writer.close()


def test_writers_wait_for_each_other(tmp_path):
    first = Store.open(tmp_path)
    errors = []

    def second_writer():
        try:
            with Store.open(tmp_path) as second:
                second.upsert_job(make_job("late"))
        except Exception as exc:  # reported to the main thread below
            errors.append(exc)

    with first.transaction():
        first.upsert_job(make_job("early"))
        thread = threading.Thread(target=second_writer)
        thread.start()
        time.sleep(0.3)
        assert thread.is_alive()  # waiting on busy_timeout, not failing
    thread.join(timeout=10)
    assert errors == [] and {j["hash"] for j in first.jobs()} == {"early", "late"}
    first.close()


def test_nested_transaction_rolls_back_only_inner(st):
    with st.transaction():
        st.upsert_job(make_job("outer"))
        with pytest.raises(RuntimeError):
            with st.transaction():
                st.upsert_job(make_job("inner"))
                raise RuntimeError
    assert [j["hash"] for j in st.jobs()] == ["outer"]


def test_reset_job_outputs_forgets_only_that_job(st):
    events = st.root / "e.jsonl"
    write_events(events, random_events(random.Random(5), 0, 3))
    for job in ("j1", "j2"):
        st.ingest_events(job, events)
        st.set_results(job, {"test_acc": 0.5})
        st.add_predictions(job, "test", [0.1, 0.9], [0, 1])
    st.reset_job_outputs("j1")
    assert (st.metrics("j1"), st.results("j1"), st.predictions("j1", "test")) == ([], {}, ([], []))
    assert set(stored(st, "j2")) == parse_file(events) and st.results("j2") == {"test_acc": 0.5}
    assert st.ingest_events("j1", events) == len(parse_file(events))  # offset forgotten too
