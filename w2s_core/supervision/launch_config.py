"""How a job is started: directly, or handed to `accelerate launch`; the command, and the accelerate config
w2s renders for it.

One process, no `[launch] accelerate_config`, no FSDP (every job on a CPU or one GPU, the usual case):
the trainer is started directly, `python -m w2s_core.training JOB_DIR` (`direct`). `accelerate launch`
would only start that one child: its own process imports torch and accelerate to do so (measured on 2
CPU cores: 2.1 s of wall and 2.2 s of CPU time and 230 MB of memory per job; a tiny job took 7.3 s, now
5.1 s). The trainer sets itself the environment accelerate's simple launcher would have given it for
`--num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no`
(w2s_core/training/__main__.py: the ACCELERATE_* variables, and OMP_NUM_THREADS as the environment's,
else 1, so torch keeps one thread as under the launcher), before it imports torch: the same
environment, hence the same results (tests/test_launch_render.py and tests/test_multiprocess.py compare
both paths). Its exit status is the trainer's own (75 to be requeued, 128+N or -N when killed by signal
N), where the launcher turned any failure into 1.

Every other job is started by `accelerate launch` (`command`). accelerate reads its default config file
(`accelerate config` writes it, under $HF_HOME/accelerate or ~/.cache/huggingface/accelerate) whenever a
launch names no `--config_file`, and takes from it every setting the command line leaves out:
`use_cpu`, `gpu_ids`, `num_machines`, `machine_rank`, FSDP or DeepSpeed... A job must not pick those up
silently (a default written for another machine maps every rank to one GPU, or waits for a second
machine), so a job's launch is always explicit (a direct job never runs the launcher, so it never
reads the default either):

- the recipe's own `[launch] accelerate_config`: passed as `--config_file`, with `--num_processes`
  and `--main_process_port` for a multi-GPU job (its own port wins, if it names one);
- else, with no default config on this machine: flags only (several processes: `--multi_gpu`,
  `--num_processes N`, `--gpu_ids all`, the job's port, `--num_machines 1 --mixed_precision no
  --dynamo_backend no`), nothing else is read;
- else (a default config exists, or the job is sharded): `--config_file JOB_DIR/accelerate.yaml`, the
  config w2s renders into the job's folder (`settings`), so the default is never read; the flags above
  are kept for a multi-GPU job, in agreement with the file.

Ports: each multi-GPU job started by the local supervisor gets its own `main_process_port`, picked free
when it is placed (placement.py, `pick_port`) and recorded in its provenance, so concurrent jobs never
meet at one rendezvous. (`--main_process_port 0`, "any free port", is what a command built without a
port says, as a Slurm job's on its own node does: accelerate resolves 0 itself only from 1.7 on.)

FSDP (`FSDP1`, what accelerate >= 1.0 runs): one unit per transformer layer
(`TRANSFORMER_BASED_WRAP` with the model family's layer class when known, else the model's own
`_no_split_modules`, which w2s's classifier passes on from its backbone: without either, FSDP would wrap
the whole model as one unit and gather all of it at once), FULL_SHARD, `use_orig_params: true` (a LoRA
job mixes frozen and trainable parameters in one layer, which flat parameters refuse otherwise),
sharded state dicts (checkpoints), rank 0 loading the weights and broadcasting them
(`cpu_ram_efficient_loading`, `sync_module_states`: one copy in host memory, not one per rank).
Flat parameters need one dtype per unit, so w2s shards only float32 models (memory.can_shard).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

CONFIG_NAME = "accelerate.yaml"  # in the job folder
PLAIN = ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
FSDP_SETTINGS = {
    "fsdp_version": 1,
    "fsdp_sharding_strategy": "FULL_SHARD",
    "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
    "fsdp_use_orig_params": True,
    "fsdp_backward_prefetch": "BACKWARD_PRE",
    "fsdp_forward_prefetch": False,
    "fsdp_state_dict_type": "SHARDED_STATE_DICT",
    "fsdp_cpu_ram_efficient_loading": True,
    "fsdp_sync_module_states": True,
    "fsdp_offload_params": False,
    "fsdp_activation_checkpointing": False,  # the trainer's own `grad_checkpointing` does it
}


def accelerate_settings(accelerate_config: str | Path) -> dict:
    """An accelerate config file's settings (YAML, or JSON, which YAML reads too); {} when it cannot
    be read or is not a mapping (accelerate itself then says what is wrong, in the job's log)."""
    import yaml  # accelerate's own dependency; imported here, as only launches read configs

    try:
        settings = yaml.safe_load(Path(accelerate_config).read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return settings if isinstance(settings, dict) else {}


def default_accelerate_config() -> Path | None:
    """The default config `accelerate config` writes, if there is one.

    Found as accelerate finds it (accelerate/commands/config/config_args.py) rather than by importing
    it: that import brings in torch, a second or more, and the supervisor and CLI never need torch.
    tests/test_supervision.py checks that both agree.
    """
    hf_home = os.environ.get("HF_HOME", os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface"))
    path = Path(os.path.expanduser(hf_home)) / "accelerate" / "default_config.yaml"
    return path if path.is_file() else None


def fsdp_config(block: str | None) -> dict:
    """The `fsdp_config` of a sharded job; `block`: the layer class to wrap (None: the model's `_no_split_modules`)."""
    return {**FSDP_SETTINGS, **({"fsdp_transformer_layer_cls_to_wrap": block} if block else {})}


def settings(processes: int = 1, port: int | None = None, fsdp: dict | None = None) -> dict:
    """The accelerate config w2s renders for a job: everything accelerate would otherwise take from a
    default config, for `processes` processes on this machine's GPUs the job was given."""
    kind = "FSDP" if fsdp is not None else ("MULTI_GPU" if processes > 1 else "NO")
    out = {
        "compute_environment": "LOCAL_MACHINE",
        "distributed_type": kind,
        "num_processes": processes,
        "num_machines": 1,
        "machine_rank": 0,
        "gpu_ids": "all",
        "mixed_precision": "no",
        "downcast_bf16": "no",
        "use_cpu": False,
        "rdzv_backend": "static",
        "same_network": True,
        "enable_cpu_affinity": False,
        "debug": False,
    }
    if processes > 1:
        out["main_process_port"] = port or 0
    if fsdp is not None:
        out["fsdp_config"] = fsdp
    return out


def yaml_text(config: dict) -> str:
    import yaml

    return yaml.safe_dump(config, sort_keys=False)


def needs_file(fsdp: dict | None = None) -> bool:
    """Whether a launch without the user's own config names the config w2s renders (module docstring)."""
    return fsdp is not None or default_accelerate_config() is not None


def path(job_dir: Path | str) -> Path:
    """Where a job's rendered config goes: its folder's CONFIG_NAME."""
    return Path(job_dir) / CONFIG_NAME


def write(job_dir: Path | str, config: dict) -> Path:
    """The rendered config in the job's folder (written atomically); its path."""
    target = path(job_dir)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(yaml_text(config))
    os.replace(tmp, target)
    return target


def direct(accelerate_config: str | None = None, processes: int = 1, fsdp: dict | None = None) -> bool:
    """Whether the job's trainer is started directly, without `accelerate launch` (module docstring)."""
    return not accelerate_config and processes <= 1 and fsdp is None


def simple_launch(job_dir: Path | str) -> list[str]:
    """The `accelerate launch` a direct job stands for (what w2s ran for one process before): its one
    process gets the environment the direct trainer sets itself. For comparisons and by hand."""
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", *PLAIN]
    return [*launch, "-m", "w2s_core.training", str(job_dir)]


def command(
    job_dir: Path | str,
    accelerate_config: str | None = None,
    processes: int = 1,
    port: int | None = None,
    fsdp: dict | None = None,
) -> list[str]:
    """The job's command (module docstring): `python -m w2s_core.training JOB_DIR` for a direct job, else
    `accelerate launch ... -m w2s_core.training JOB_DIR`. When the launch names the rendered config and
    `job_dir` exists, the config is written there (a dry run's folder does not exist: nothing is written)."""
    tail = ["-m", "w2s_core.training", str(job_dir)]
    if direct(accelerate_config, processes, fsdp):
        return [sys.executable, *tail]
    cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    if accelerate_config:
        cmd += ["--config_file", accelerate_config]
        if processes > 1:
            cmd += ["--num_processes", str(processes)]
            if "main_process_port" not in accelerate_settings(accelerate_config):
                cmd += ["--main_process_port", str(port or 0)]
        return cmd + tail
    if needs_file(fsdp):
        if Path(job_dir).is_dir():
            write(job_dir, settings(processes, port, fsdp))
        cmd += ["--config_file", str(path(job_dir))]
        if processes == 1:
            return cmd + tail  # the file says everything (one sharded process)
    if fsdp is not None:
        return cmd + ["--num_processes", str(processes), "--main_process_port", str(port or 0)] + tail
    cmd += ["--multi_gpu", "--num_processes", str(processes), "--gpu_ids", "all"]
    return cmd + ["--main_process_port", str(port or 0), *PLAIN] + tail


def describe(accelerate_config: str | None, processes: int, fsdp: dict | None) -> str:
    """One phrase for the dry run: which accelerate config a job uses and how many processes it starts."""
    n = f"{processes} process{'es' if processes > 1 else ''}"
    if accelerate_config:
        return f"accelerate: your config {accelerate_config} ({n})"
    kind = "FSDP" if fsdp is not None else ("MULTI_GPU" if processes > 1 else "NO")
    default = default_accelerate_config()
    unread = f"; your default {default} is not read" if default is not None else ""
    if direct(accelerate_config, processes, fsdp):
        return f"accelerate: none (one process started directly, the environment accelerate launch would set){unread}"
    if fsdp is not None or default is not None:
        wrap = fsdp.get("fsdp_transformer_layer_cls_to_wrap", "the model's _no_split_modules") if fsdp else ""
        detail = f", one FSDP unit per {wrap}, use_orig_params" if fsdp is not None else ""
        return f"accelerate: w2s renders JOB_DIR/{CONFIG_NAME} ({kind}, {n}{detail}){unread}"
    port = ", a free port of its own" if processes > 1 else ""
    return f"accelerate: flags only ({kind}, {n}{port}; no default config on this machine)"
