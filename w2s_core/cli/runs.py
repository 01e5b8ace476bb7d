"""`w2s runs`: the list of runs, with their tags and notes (`w2s tag`, `w2s note`) and `--tag` filtering.

A run carries its own tags and those of its recipe (`w2s tag lr-sweep paper` tags every run of it);
the table shows both (the recipe's after "recipe:") and the run's latest note, cut to fit; `--json` keeps
them apart (`tags: {run: [...], recipe: [...]}`) with every note. `--tag T` keeps the runs that carry T
either way; repeated, it keeps those that carry all of them.
"""

from __future__ import annotations

from argparse import Namespace
from collections import defaultdict

from w2s_core.cli.output import json_text, stamp
from w2s_core.cli.queue import resume_and_say
from w2s_core.cli.targets import ordered
from w2s_core.status import ACTIVE
from w2s_core.store import Store

NOTE_WIDTH = 40  # characters of the latest note in the table (all of it is in --json and `w2s show RUN`)
TAGS_WIDTH = 40  # at most this many characters of tags in the table (all of them are in --json)


def annotated_runs(store: Store) -> list[dict]:
    """Every run with its recipe's name, its tags (its own, its recipe's) and its notes, oldest first."""
    names = {r["hash"]: r["name"] for r in store.recipes()}
    tags: dict[tuple[str, str], list[str]] = defaultdict(list)
    for row in store.tags():
        if row["kind"] in ("run", "recipe"):
            tags[(row["kind"], row["target"])].append(row["tag"])
    notes: dict[int, list[dict]] = defaultdict(list)
    for note in store.notes():
        notes[note["run_id"]].append({k: note[k] for k in ("id", "text", "created_at")})
    return [
        {
            **r,
            "recipe": names.get(r["recipe_hash"]),
            "tags": {"run": sorted(tags[("run", str(r["id"]))]), "recipe": sorted(tags[("recipe", r["recipe_hash"])])},
            "notes": notes[r["id"]],
        }
        for r in store.runs()
    ]


def carries(run: dict, wanted: list[str]) -> bool:
    """Whether the run, or its recipe, carries every tag of `wanted`."""
    have = {*run["tags"]["run"], *run["tags"]["recipe"]}
    return all(t in have for t in wanted)


def tags_text(run: dict) -> str:
    recipe = run["tags"]["recipe"]
    return " ".join(run["tags"]["run"] + ([f"recipe:{','.join(recipe)}"] if recipe else []))


def cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def note_text(run: dict) -> str:
    """The run's latest note on one line, cut to NOTE_WIDTH."""
    return cut(" ".join(run["notes"][-1]["text"].split()), NOTE_WIDTH) if run["notes"] else ""


def cmd_runs(args: Namespace) -> int:
    wanted = list(dict.fromkeys(getattr(args, "tag", None) or []))
    with Store.open(args.results_dir, readonly=True) as store:
        runs = [r for r in annotated_runs(store) if carries(r, wanted)]
        resume_and_say(store.root, store.jobs(status=ordered(ACTIVE)))
    if args.json:
        print(json_text(runs))
        return 0
    width = min(max([len(tags_text(r)) for r in runs] + [4]), TAGS_WIDTH)
    print(f"{'id':>4}  {'recipe':<24} {'started':<19}  {'status':<11}  {'tags':<{width}}  note")
    for r in runs:
        line = f"{r['id']:>4}  {str(r['recipe']):<24} {stamp(r['started_at']):<19}  {r['status']:<11}"
        print(f"{line}  {cut(tags_text(r), width):<{width}}  {note_text(r)}".rstrip())
    if wanted and not runs:
        print(f"(no run carries {' and '.join(wanted)}; `w2s tag RUN|RECIPE TAG` adds tags)")
    return 0
