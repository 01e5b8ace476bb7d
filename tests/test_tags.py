"""Tags and notes (issue 13): the m008 migration, the store's methods, `w2s tag/untag/note` (written here under
the writer lock, or by the supervisor holding it), `w2s runs` and `w2s show`, and the History screen's column
and `tag:NAME` search. Against the filled database of conftest (one recipe, one run, 22 jobs)."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
from conftest import RECIPE, RECIPE_HASH
from tui_helpers import screen_text

from w2s_core import cli
from w2s_core.errors import InputError
from w2s_core.status import RunStatus
from w2s_core.store import Store, schema
from w2s_core.store import queries as browse
from w2s_core.store.annotations import MAX_TAG
from w2s_core.store.schema import Migrations
from w2s_core.supervision.lock import WriterLock
from w2s_core.supervision.loop import Supervisor
from w2s_core.supervision.requests import pending
from w2s_tui.app import W2SApp
from w2s_tui.widgets import JobTable


def w2s(capsys, root, *args) -> tuple[int, str, str]:
    code = cli.main(["--results-dir", str(root), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def runs_json(capsys, root, *tags) -> list[dict]:
    code, out, _ = w2s(capsys, root, "runs", "--json", *(a for t in tags for a in ("--tag", t)))
    assert code == 0
    return json.loads(out)


def second_run(root) -> int:
    with Store.open(root) as store:
        run_id = store.start_run(RECIPE_HASH, ["w2s", "retry"], {})
        store.finish_run(run_id, RunStatus.DONE)
    return run_id


# -- the store ----------------------------------------------------------------------------------


def test_a_v7_database_gains_the_tables_and_keeps_its_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(schema, "MIGRATIONS", Migrations(schema.MIGRATIONS.steps[:7]))
    with Store.open(tmp_path) as s:  # written before tags existed
        s.add_recipe("r1", "demo", "demo.toml", "x = 1")
        run_id = s.start_run("r1", ["w2s", "run"], {})
        s.upsert_job({"hash": "ab" * 32, "kind": "gt", "model": "m", "seed": 0, "spec": {}, "run_id": run_id})
        assert "tags" not in s.db.table_names()
    monkeypatch.undo()
    with Store.open(tmp_path) as s:
        assert s.db.execute("PRAGMA user_version").fetchone()[0] == schema.schema_version() >= 8
        assert [r["id"] for r in s.runs()] == [run_id] and s.get_job("ab" * 32)["model"] == "m"
        assert s.recipes()[0]["name"] == "demo" and s.tags() == [] and s.notes() == []
        assert s.add_tags("run", str(run_id), ["kept"]) == 1 and s.add_note(run_id, "first") == 1


@pytest.mark.parametrize("bad", ["", "two words", "a,b", "tab\there", "x" * (MAX_TAG + 1)])
def test_a_tag_is_one_word(tmp_path, bad):
    with Store.open(tmp_path) as s:
        s.add_recipe("r1", "demo", None, "x = 1")
        with pytest.raises(InputError, match="not empty, no spaces or commas"):
            s.add_tags("recipe", "r1", ["fine", bad])
        assert s.tags() == []  # all or nothing
        assert s.add_tags("recipe", "r1", ["x" * MAX_TAG, "lr=1e-5", "ünïcode"]) == 3


def test_tags_add_and_remove_idempotently_and_notes_keep_their_order(tmp_path):
    with Store.open(tmp_path) as s:
        s.add_recipe("r1", "demo", None, "x = 1")
        run_id = s.start_run("r1", [], {})
        assert s.add_tags("run", str(run_id), ["a", "b", "a"]) == 2
        assert s.add_tags("run", str(run_id), ["b", "c"]) == 1
        assert s.add_tags("recipe", "r1", ["a"]) == 1
        assert [r["tag"] for r in s.tags("run")] == ["a", "b", "c"]
        assert {(r["kind"], r["target"], r["tag"]) for r in s.tags()} >= {("recipe", "r1", "a"), ("run", "1", "c")}
        assert s.remove_tags("run", str(run_id), ["a", "zzz"]) == 1
        assert s.remove_tags("run", str(run_id), ["a"]) == 0  # gone already: no error
        assert s.tags_of(run=run_id, recipe="r1") == {"run": ["b", "c"], "recipe": ["a"]}
        for text in ("first", "second"):
            s.add_note(run_id, f"  {text}  ")
        assert [(n["run_id"], n["text"]) for n in s.notes(run_id)] == [(run_id, "first"), (run_id, "second")]
        with pytest.raises(InputError, match="no run '99'"):
            s.add_note(99, "x")
        with pytest.raises(InputError, match="no job"):
            s.add_tags("job", "ff" * 32, ["x"])
        with pytest.raises(InputError, match="needs some text"):
            s.add_note(run_id, "   ")


# -- the CLI ------------------------------------------------------------------------------------


def test_tag_untag_and_note_through_the_cli(filled_results, tmp_path, capsys):
    root, hashes = filled_results.root, filled_results.hashes
    later = second_run(root)
    job = hashes["gt m-mid s0"]
    assert w2s(capsys, root, "tag", "1", "baseline", "keep")[:2] == (0, "tagged run 1: baseline, keep\n")
    assert w2s(capsys, root, "tag", RECIPE, "paper")[0] == 0  # by name: every run of the recipe
    assert w2s(capsys, root, "tag", job[:8], "odd-curve")[1] == f"tagged job {job[:10]}: odd-curve\n"
    code, out, _ = w2s(capsys, root, "untag", "1", "keep", "never-there")
    assert code == 0 and out == "untagged run 1: keep\nrun 1 did not carry: never-there (nothing to remove)\n"
    assert w2s(capsys, root, "note", "1", "lr too high; rerun with 1e-5 and a much longer warm-up please")[0] == 0

    runs = {r["id"]: r for r in runs_json(capsys, root)}
    assert runs[1]["tags"] == {"run": ["baseline"], "recipe": ["paper"]}
    assert runs[later]["tags"] == {"run": [], "recipe": ["paper"]} and runs[later]["notes"] == []
    assert [n["text"] for n in runs[1]["notes"]] == ["lr too high; rerun with 1e-5 and a much longer warm-up please"]
    assert [r["id"] for r in runs_json(capsys, root, "paper")] == [1, later]  # the recipe's tag counts
    assert [r["id"] for r in runs_json(capsys, root, "paper", "baseline")] == [1]  # repeated: all of them
    assert runs_json(capsys, root, "baseline", "nope") == []

    table = w2s(capsys, root, "runs")[1].splitlines()
    assert table[0].split() == ["id", "recipe", "started", "status", "tags", "note"]
    first = next(line for line in table if line.split()[0] == "1")
    assert "baseline recipe:paper" in first and "lr too high" in first and first.endswith("…")

    shown = json.loads(w2s(capsys, root, "show", "1")[1])
    assert shown["tags"] == {"run": ["baseline"], "recipe": ["paper"]} and shown["notes"][0]["id"] == 1
    shown = json.loads(w2s(capsys, root, "show", job[:12])[1])
    assert shown["tags"] == {"job": ["odd-curve"], "run": ["baseline"], "recipe": ["paper"]}

    recipe_file = tmp_path / "grid-demo.toml"  # a file of that name, not recorded: by its stem
    recipe_file.write_text("name = 'grid-demo'\n")
    assert w2s(capsys, root, "tag", str(recipe_file), "from-file")[1] == f"tagged recipe {RECIPE}: from-file\n"


def test_cli_refuses_bad_tags_and_targets_with_one_message(filled_results, capsys):
    root = filled_results.root
    code, _, err = w2s(capsys, root, "tag", "1", "two words")
    assert code == 2 and "not a valid tag" in err and "no spaces or commas" in err
    code, _, err = w2s(capsys, root, "tag", "no-such-recipe", "x")
    assert code == 2 and "not a run id, a job hash prefix or a recipe" in err
    with Store.open(root) as store:
        for tail in "01":
            store.upsert_job({"hash": "abcd" + tail * 60, "kind": "gt", "model": "m", "seed": 0, "spec": {}})
    shared = "abcd"
    code, _, err = w2s(capsys, root, "tag", shared, "x")
    assert code == 2 and "give a longer hash prefix" in err
    code, _, err = w2s(capsys, root, "note", "42", "text")
    assert code == 2 and "no run 42" in err
    code, _, err = w2s(capsys, root, "note", "1", "  ")
    assert code == 2 and "the note is empty" in err
    with Store.open(root) as store:
        assert store.tags() == [] and store.notes() == []


def test_a_running_supervisor_applies_the_request(filled_results, capsys):
    """While a supervisor holds the writer lock, `w2s tag` posts a request and waits until it is applied."""
    root = filled_results.root
    held, stop = threading.Event(), threading.Event()

    def supervise():
        with WriterLock(root) as lock:
            assert lock.try_acquire()
            held.set()
            with Store.open(root) as store:
                sup = Supervisor(store, [], echo=lambda m: None)
                while not stop.is_set():
                    sup.apply_pending()  # the tick's first step
                    time.sleep(0.05)

    thread = threading.Thread(target=supervise)
    thread.start()
    try:
        held.wait(10)
        assert w2s(capsys, root, "tag", "1", "live")[0] == 0
        assert w2s(capsys, root, "note", "1", "while it ran")[0] == 0
        assert pending(root) == []
        with Store.open(root, readonly=True) as store:
            assert [r["tag"] for r in store.tags("run")] == ["live"] and store.notes()[0]["text"] == "while it ran"
    finally:
        stop.set()
        thread.join()


# -- the History screen -------------------------------------------------------------------------


def test_job_lists_carry_tags_and_search_by_tag(filled_results):
    root, hashes = filled_results.root, filled_results.hashes
    job = hashes["m-small to m-big logconf s1"]
    with Store.open(root) as store:
        store.add_tags("job", job, ["odd"])
        store.add_tags("recipe", RECIPE_HASH, ["paper"])
        every = browse.count_jobs(store)
        assert browse.count_jobs(store, "tag:paper") == every  # the recipe's tag is on every job
        assert [r["hash"] for r in browse.job_rows(store, "tag:odd")] == [job]
        assert browse.count_jobs(store, "tag:odd m-mid") == 0 and browse.count_jobs(store, "tag:nothing") == 0
        row = browse.job_rows(store, "tag:odd tag:paper")[0]
        assert row["tags"] == ["odd", "paper"]


def test_history_shows_tags_and_filters_by_tag_in_its_search(filled_results, settle):
    root, hashes = filled_results.root, filled_results.hashes
    job = hashes["m-small to m-big logconf s1"]
    with Store.open(root) as store:
        store.add_tags("job", job, ["odd-curve"])

    async def body():
        app = W2SApp(root, start="history")
        async with app.run_test(size=(200, 40)) as pilot:
            await settle(pilot)
            assert "tags" in screen_text(app) and "odd-curve" in screen_text(app)
            await pilot.press("slash", *"tag:odd-curve")
            await settle(pilot)
            assert list(app.screen.query_one(JobTable).jobs) == [job]
            assert f"1 of {len(hashes)} jobs match" in screen_text(app)

    asyncio.run(body())
