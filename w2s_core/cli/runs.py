"""`w2s runs`: the list of runs, with their tags and notes (`w2s tag`, `w2s note`) and `--tag` filtering."""

from __future__ import annotations

from argparse import Namespace

from w2s_core.cli.output import json_text, stamp
from w2s_core.cli.queue import resume_and_say
from w2s_core.cli.targets import ordered
from w2s_core.status import ACTIVE
from w2s_core.store import Store


def cmd_runs(args: Namespace) -> int:
    with Store.open(args.results_dir, readonly=True) as store:
        names = {r["hash"]: r["name"] for r in store.recipes()}
        runs = [{**r, "recipe": names.get(r["recipe_hash"])} for r in store.runs()]
        resume_and_say(store.root, store.jobs(status=ordered(ACTIVE)))
    if args.json:
        print(json_text(runs))
        return 0
    print(f"{'id':>4}  {'recipe':<24} {'started':<19}  {'status':<11}")
    for r in runs:
        print(f"{r['id']:>4}  {str(r['recipe']):<24} {stamp(r['started_at']):<19}  {r['status']:<11}")
    return 0
