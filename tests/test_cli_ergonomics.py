"""Issue 15's CLI ergonomics: `--results-dir` after the subcommand as well as before it, and a dry run
that runs the data checks a launch runs (a missing column fails the dry run, not the launch)."""

from __future__ import annotations

from tui_helpers import TINY

from w2s_core import cli


def test_results_dir_is_accepted_before_and_after_the_subcommand(filled_results, capsys, tmp_path):
    root = str(filled_results.root)
    assert cli.main(["--results-dir", root, "runs", "--json"]) == 0
    before = capsys.readouterr().out
    assert cli.main(["runs", "--json", "--results-dir", root]) == 0
    assert capsys.readouterr().out == before and "grid-demo" in before
    assert cli.main(["--results-dir", str(tmp_path / "elsewhere"), "results", "--results-dir", root, "--json"]) == 0
    assert "m-small" in capsys.readouterr().out  # the one after the subcommand wins


def test_dry_run_runs_the_data_checks(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "data.jsonl").write_text("".join(f'{{"text": "item {i}", "answer": {i % 2}}}\n' for i in range(300)))
    (tmp_path / "missing.toml").write_text(
        TINY.replace('name = "synthetic"', 'path = "data.jsonl"').replace("seed = 0\n", "")
    )
    code = cli.main(["--results-dir", str(tmp_path / "res"), "run", "--dry-run", "missing.toml"])
    captured = capsys.readouterr()
    assert code == 2 and "no column 'label'" in captured.err and "label_column" in captured.err, captured
    assert "to run" in captured.out  # the plan is still listed first
    (tmp_path / "data.jsonl").write_text("".join(f'{{"text": "item {i}", "label": {i % 2}}}\n' for i in range(300)))
    assert cli.main(["--results-dir", str(tmp_path / "res"), "run", "--dry-run", "missing.toml"]) == 0
    assert "data checks: passed" in capsys.readouterr().out
    (tmp_path / "data.jsonl").write_text("".join(f'{{"text": "item {i}", "label": {i % 2}}}\n' for i in range(60)))
    assert cli.main(["--results-dir", str(tmp_path / "res"), "run", "--dry-run", "missing.toml"]) == 2
    assert "asks for more data than" in capsys.readouterr().err  # 60 rows: too few for n_train 80 + n_test 40
