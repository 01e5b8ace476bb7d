"""The local executor (the default): each job a detached process on this machine, as w2s always ran them.

Everything here is runner.py's and processes.py's, unchanged: a job starts in its own session on the
device slot placement gave it (CUDA_VISIBLE_DEVICES), under the `sh` wrapper that records its exit
status, running its trainer directly when it has one process and `accelerate launch` otherwise
(launch_config.py); it is followed by pid and process start time, so a restarted supervisor re-attaches to it;
cancelling kills its whole process tree and waits until it is gone. Tests replace
`runner.launch_command`, so it is looked up on the module at each call.

A job placed on several GPUs starts with the rendezvous port its slot holds and, when the memory plan
shards it (planning.fsdp_for: `[launch] fsdp`, the GPUs' memory), w2s's FSDP config (launch_config.py).
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from w2s_core.supervision import planning, runner
from w2s_core.supervision.executors import LOCAL, launch_of
from w2s_core.supervision.slots import gpu_count

if TYPE_CHECKING:
    from w2s_core.store import Store
    from w2s_core.store.rows import JobRow
    from w2s_core.supervision.runner import Attempt
    from w2s_core.supervision.slots import Slot


class LocalExecutor:
    name = LOCAL

    def start(self, store: Store, row: JobRow, slot: Slot) -> Attempt:
        n = gpu_count(slot.name)
        if n <= 1:
            return runner.start(store, row, slot.name, slot.env)
        launch = launch_of(row)
        gpu_gib = planning.configured_gib(launch) or slot.memory_gib
        fsdp = planning.fsdp_for(row["spec"], launch, n, gpu_gib)
        return runner.start(store, row, slot.name, slot.env, port=slot.port, fsdp=fsdp)

    def poll(self, attempt: Attempt) -> int | str | None:
        return attempt.poll()

    def follow(self, store: Store, attempt: Attempt) -> None:
        runner.follow(store, attempt)

    def finish(self, store: Store, attempt: Attempt, status: int | str) -> bool:
        return runner.finish(store, attempt, status)

    def cancel(self, store: Store, attempt: Attempt) -> None:
        runner.cancel(store, attempt)

    def reattach(self, store: Store, row: JobRow) -> Attempt:
        return runner.reattach(store, row)

    def describe_command(self, row: dict) -> str:
        """The command as `runner.start` builds it on one GPU per process of `[launch] gpus_per_job` (one
        process: the trainer itself, unless the recipe names an accelerate config; a multi-GPU job's port is
        picked when it starts: PORT here)."""
        launch = launch_of(row)
        gpus = int(launch.get("gpus_per_job", 1))
        folder = row.get("dir") or f"{runner.JOBS_DIR}/{row['hash'][:16]}"
        if gpus <= 1:
            return shlex.join(runner.launch_command(folder, launch.get("accelerate_config")))
        gpu_gib = planning.configured_gib(launch)
        fsdp = planning.fsdp_for(row["spec"], launch, gpus, gpu_gib) if row.get("spec") else None
        command = runner.launch_command(folder, launch.get("accelerate_config"), gpus, port=0, fsdp=fsdp)
        return shlex.join(command).replace("--main_process_port 0", "--main_process_port PORT")
