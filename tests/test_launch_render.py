"""Launch commands and accelerate configs as w2s renders them (issue 14): a 2-GPU job and two concurrent ones
(each with its own port, recorded), a default accelerate config that must not be read, FSDP per layer with
use_orig_params, and what `--dry-run` says. No GPU: the supervisor's start step runs for real with
`processes.launch` capturing the command, and accelerate's own argument handling reads the commands.

A job of one process runs no launcher (launch_config.direct): its trainer, started directly, must see the
environment `accelerate launch --num_processes 1 ...` gives its one process (every variable, torch's
threads), set before torch is imported; both are run here and compared.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_placement import launched, queue, store, sup_over  # noqa: F401 (fixtures)

from w2s_core.spec.registry import model_defaults
from w2s_core.supervision import launch_config, planning
from w2s_core.supervision.executors.local import LocalExecutor
from w2s_core.supervision.slots import PORT_BASE, SlotTable, device_slots, pick_port

# A default config written for another machine: every key would break a w2s job if accelerate read it.
HOSTILE = {
    "compute_environment": "LOCAL_MACHINE",
    "distributed_type": "FSDP",
    "gpu_ids": "0",
    "num_machines": 2,
    "machine_rank": 1,
    "main_process_ip": "10.0.0.9",
    "num_processes": 8,
    "use_cpu": True,
    "mixed_precision": "fp16",
    "fsdp_config": {"fsdp_sharding_strategy": "NO_SHARD"},
}
ASKED = ("multi_gpu", "use_fsdp", "num_processes", "num_machines", "machine_rank", "gpu_ids", "main_process_port",
         "main_process_ip", "mixed_precision", "cpu", "fsdp_transformer_layer_cls_to_wrap", "fsdp_use_orig_params",
         "fsdp_auto_wrap_policy", "fsdp_sharding_strategy")  # fmt: skip
READ_ARGS = """
import json, sys
from accelerate.commands.launch import launch_command_parser, _validate_launch_command
out = []
for cmd in json.loads(sys.argv[1]):
    args, _, _ = _validate_launch_command(launch_command_parser().parse_args(cmd))
    out.append({k: getattr(args, k, None) for k in json.loads(sys.argv[2])})
print(json.dumps(out))
"""


def accelerate_reads(commands: list[list[str]], hf_home: Path) -> list[dict]:
    """What `accelerate launch` makes of each command's arguments (its own parser and validation)."""
    argv = [c[3:] for c in commands]
    env = {"HF_HOME": str(hf_home), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", READ_ARGS, json.dumps(argv), json.dumps(ASKED)],
        capture_output=True, text=True, env=env, timeout=300, check=True,
    )  # fmt: skip
    return json.loads(out.stdout)


# Loaded by the trainer (PYTHONPATH): what it sees, in both launches, written where W2S_TEST_SEEN says. An
# audit hook notes the launcher's variables as torch starts to load (OMP_NUM_THREADS is read then); the
# trainer's first job-folder read (after its device check imported torch) writes all, then ends the run.
SEEN_HOOK = """
import json, os, sys
from w2s_core import jobdir

KEYS = ("OMP_NUM_THREADS", "ACCELERATE_USE_CPU", "ACCELERATE_MIXED_PRECISION", "ACCELERATE_DYNAMO_BACKEND")
at_import = {}

def _audit(event, args):
    if event == "import" and args[0] == "torch" and not at_import:
        at_import.update({k: os.environ.get(k) for k in KEYS}, seen=True)

sys.addaudithook(_audit)

def _read_spec(self):
    import torch
    seen = {"env": dict(os.environ), "threads": torch.get_num_threads(), "at_torch_import": at_import}
    with open(os.environ["W2S_TEST_SEEN"], "w") as f:
        json.dump(seen, f)
    sys.exit(0)

jobdir.JobDir.read_spec = _read_spec
"""


def trainer_sees(command: list[str], env: dict, seen: Path) -> dict:
    """What the trainer that `command` starts sees (SEEN_HOOK)."""
    done = subprocess.run(command, env={**env, "W2S_TEST_SEEN": str(seen)}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and seen.is_file(), done.stdout[-2000:] + done.stderr[-4000:]
    out = json.loads(seen.read_text())
    out["env"].pop("W2S_TEST_SEEN")
    return out


@pytest.mark.parametrize("omp", [None, "2"])
def test_a_direct_job_sees_what_accelerate_launch_gives_its_one_process(tmp_path, monkeypatch, omp):
    """The one-process command runs no launcher, yet its trainer sees the same environment (every variable:
    ACCELERATE_*, OMP_NUM_THREADS as the environment's, else 1) and the same torch threads as under
    `accelerate launch --num_processes 1 ...`, all set before torch loads. A default accelerate config is
    no matter to it: only the launcher would read one."""
    from w2s_core.training.__main__ import SIMPLE_LAUNCHER_ENV

    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(SEEN_HOOK)
    hostile = tmp_path / "hf"
    (hostile / "accelerate").mkdir(parents=True)
    (hostile / "accelerate" / "default_config.yaml").write_text(yaml.safe_dump(HOSTILE))
    job = tmp_path / "job"
    job.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", *SIMPLE_LAUNCHER_ENV)}
    root = str(Path(__file__).resolve().parent.parent)
    env.update(
        PYTHONPATH=os.pathsep.join([str(hooks), root]),
        HF_HOME=str(tmp_path / "no-hf"),
        **({"OMP_NUM_THREADS": omp} if omp else {}),
    )
    via_launcher = trainer_sees(launch_config.simple_launch(job), env, tmp_path / "via_launcher.json")
    monkeypatch.setenv("HF_HOME", str(hostile))
    command = launch_config.command(job, None)
    assert command == [sys.executable, "-m", "w2s_core.training", str(job)] and not (job / "accelerate.yaml").exists()
    direct = trainer_sees(command, {**env, "HF_HOME": str(hostile)}, tmp_path / "direct.json")
    direct["env"]["HF_HOME"] = via_launcher["env"]["HF_HOME"]
    assert direct["env"] == via_launcher["env"]  # every variable, not only the launcher's
    assert direct["threads"] == via_launcher["threads"] and (omp or direct["threads"] == 1)
    assert via_launcher["env"]["OMP_NUM_THREADS"] == (omp or "1")
    assert {k: via_launcher["env"][k] for k in SIMPLE_LAUNCHER_ENV} == SIMPLE_LAUNCHER_ENV
    expected = {k: direct["env"][k] for k in direct["at_torch_import"] if k != "seen"}
    assert direct["at_torch_import"] == {**expected, "seen": True}  # set before torch was imported


def gpt2_xl_spec(**train) -> dict:
    m = model_defaults("gpt2-xl")
    t = {k: m[k] for k in ("lr", "batch_size", "minibatch_size", "max_length", "grad_checkpointing", "dtype")}
    return {"model": {"name": "gpt2-xl", "path": "gpt2-xl"}, "train": {**t, "mode": "finetune", **train}, "data": {}}


def test_two_concurrent_two_gpu_jobs_get_their_own_free_ports_recorded(store, launched):  # noqa: F811
    sup = sup_over(store, ["0", "1", "2", "3"])
    first, second = queue(store, "a", {"gpus_per_job": 2}), queue(store, "b", {"gpus_per_job": 2})
    with socket.socket() as taken:  # someone else's server on the first port w2s would pick
        taken.bind(("", pick_port(set())))
        other = taken.getsockname()[1]
        sup.start_ready()
    rows = [store.get_job(first), store.get_job(second)]
    ports = []
    for row in rows:
        command, env = launched[row["hash"][:16]]
        assert row["device"] in ("cuda:0,1", "cuda:2,3") and env["W2S_DEVICE"] == row["device"]
        assert command[3:8] == ["--multi_gpu", "--num_processes", "2", "--gpu_ids", "all"]
        port = int(command[command.index("--main_process_port") + 1])
        assert row["provenance"]["main_process_port"] == port and port != other
        ports.append(port)
    assert len(set(ports)) == 2 and all(PORT_BASE <= p < PORT_BASE + 2000 for p in ports)
    assert sorted(sup.slots.ports.values()) == sorted(ports)
    sup.slots.release(first)  # its process tree is gone: its port may be given again
    assert first not in sup.slots.ports and sup.slots.ports == {second: ports[1]}
    assert rows[0]["provenance"]["accelerate_config"] is None  # flags only: no config file was read


def test_a_default_accelerate_config_is_never_read(tmp_path, monkeypatch):
    """With a hostile default config, accelerate itself reads w2s's settings from the command alone."""
    hf = tmp_path / "hf"
    (hf / "accelerate").mkdir(parents=True)
    (hf / "accelerate" / "default_config.yaml").write_text(yaml.safe_dump(HOSTILE))
    monkeypatch.setenv("HF_HOME", str(hf))
    jobs = [tmp_path / name for name in ("one", "two", "fsdp")]
    for job in jobs:
        job.mkdir()
    one = launch_config.command(jobs[0], None)  # one process: no launcher, which alone would read the default
    assert one == [sys.executable, "-m", "w2s_core.training", str(jobs[0])]  # (its environment: the test above)
    assert not (jobs[0] / "accelerate.yaml").exists()
    two = launch_config.command(jobs[1], None, 2, 29611)
    rendered = yaml.safe_load((jobs[1] / "accelerate.yaml").read_text())
    assert rendered["num_processes"] == 2 and rendered["main_process_port"] == 29611
    assert rendered["distributed_type"] == "MULTI_GPU" and rendered["num_machines"] == 1
    fsdp = launch_config.command(jobs[2], None, 2, 29612, launch_config.fsdp_config("GPT2Block"))
    # the command w2s built before issue 14 with a default config present: the default leaked into it
    before = [*two[:3], "--multi_gpu", "--num_processes", "2", "--gpu_ids", "all", "--main_process_port", "0",
              "-m", "w2s_core.training", str(jobs[1])]  # fmt: skip
    seen = accelerate_reads([two, fsdp, before], hf)
    for args in seen[:2]:
        assert args["num_machines"] == 1 and args["machine_rank"] == 0 and args["main_process_ip"] is None
        assert args["gpu_ids"] == "all" and args["mixed_precision"] == "no" and not args["cpu"]
    assert seen[0]["multi_gpu"] and seen[0]["main_process_port"] == 29611 and seen[0]["num_processes"] == 2
    assert seen[1]["use_fsdp"] and not seen[1]["multi_gpu"] and seen[1]["main_process_port"] == 29612
    assert seen[1]["fsdp_transformer_layer_cls_to_wrap"] == "GPT2Block" and seen[1]["fsdp_use_orig_params"]
    assert seen[1]["fsdp_sharding_strategy"] == "FULL_SHARD"
    assert seen[2]["num_machines"] == 2 and seen[2]["machine_rank"] == 1  # it would wait for a second machine


def test_fsdp_config_shards_per_layer_with_orig_params_and_is_chosen_only_when_needed(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # no default config
    job = tmp_path / "job"
    job.mkdir()
    settings = launch_config.fsdp_config("GPT2Block")
    cmd = launch_config.command(job, None, 2, 29620, settings)
    assert cmd[3:9] == ["--config_file", str(job / "accelerate.yaml"), "--num_processes", "2",
                        "--main_process_port", "29620"]  # fmt: skip
    assert "--multi_gpu" not in cmd  # it would override the file's FSDP
    rendered = yaml.safe_load((job / "accelerate.yaml").read_text())
    assert rendered["distributed_type"] == "FSDP" and rendered["num_processes"] == 2
    fsdp = rendered["fsdp_config"]
    assert fsdp["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    assert fsdp["fsdp_transformer_layer_cls_to_wrap"] == "GPT2Block" and fsdp["fsdp_use_orig_params"] is True
    assert fsdp["fsdp_sharding_strategy"] == "FULL_SHARD" and fsdp["fsdp_state_dict_type"] == "SHARDED_STATE_DICT"
    assert "fsdp_transformer_layer_cls_to_wrap" not in launch_config.fsdp_config(None)  # the model's own list

    big = gpt2_xl_spec(dtype="auto", optimizer="adam", lora=False)
    assert planning.fsdp_for(big, {"fsdp": True}, 2, None) == settings
    assert planning.fsdp_for(big, {}, 2, 80.0) is None  # a replica fits 80 GiB: DDP
    assert planning.fsdp_for(big, {}, 2, 24.0) == settings  # it does not fit 24 GiB, shards do
    assert planning.fsdp_for(big, {"fsdp": False}, 2, 24.0) is None
    assert planning.fsdp_for(big, {}, 1, 24.0) is None  # one process: nothing to shard over
    bf16 = gpt2_xl_spec(dtype="bfloat16", optimizer="adafactor", lora=False)
    assert planning.fsdp_for(bf16, {}, 2, 8.0) is None  # a bf16 model and float32 head: not FSDP1's


def test_the_executor_starts_a_sharded_job_with_its_rendered_config(tmp_path, store, launched, monkeypatch):  # noqa: F811
    sup = sup_over(store, ["0", "1"])
    job = queue(store, "a", {"gpus_per_job": 2, "fsdp": True})
    store.upsert_job({"hash": job, "spec": gpt2_xl_spec(dtype="auto", optimizer="adam", lora=False)})
    sup.start_ready()
    row = store.get_job(job)
    command, _ = launched[job[:16]]
    folder = Path(command[-1])
    assert command[4] == str(folder / "accelerate.yaml") and "--multi_gpu" not in command
    text = row["provenance"]["accelerate_config"]
    assert "distributed_type: FSDP" in text and "fsdp_transformer_layer_cls_to_wrap: GPT2Block" in text
    assert row["provenance"]["main_process_port"] == int(command[command.index("--main_process_port") + 1])
    described = LocalExecutor().describe_command(store.get_job(job))
    assert "--main_process_port PORT" in described and "accelerate.yaml" in described


def test_the_classifier_passes_its_backbones_layer_class_to_fsdp(w2s_cache):
    """accelerate's transformer-based wrap policy, built from the wrapper model itself, wraps each block."""
    import torch
    from accelerate.utils import FullyShardedDataParallelPlugin

    from w2s_core.training.models import PairScores, load_classifier

    spec = {"name": "t", "path": "tiny-random-gpt2", "tiny": {"hidden_size": 16, "num_layers": 2}}
    for lora in (None, {}):  # LoRA (peft) passes it on as well
        model, _ = load_classifier(spec, dtype=torch.float32, lora=lora, grad_checkpointing=False)
        assert set(model._no_split_modules) == {"GPT2Block"} == set(PairScores(model)._no_split_modules)
        plugin = FullyShardedDataParallelPlugin(auto_wrap_policy="transformer_based_wrap")
        plugin.set_auto_wrap_policy(model)
        wrapped = [m for m in model.modules() if plugin.auto_wrap_policy(m, recurse=False, nonwrapped_numel=1)]
        assert len(wrapped) == 2 and {type(m).__name__ for m in wrapped} == {"GPT2Block"}


def test_dry_run_says_which_accelerate_config_each_job_uses(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert launch_config.describe(None, 1, None) == (
        "accelerate: none (one process started directly, the environment accelerate launch would set)"
    )
    assert "a free port of its own" in launch_config.describe(None, 2, None)
    fsdp = launch_config.describe(None, 2, launch_config.fsdp_config("GPT2Block"))
    assert fsdp == (
        "accelerate: w2s renders JOB_DIR/accelerate.yaml (FSDP, 2 processes, one FSDP unit per GPT2Block, "
        "use_orig_params)"
    )
    assert launch_config.describe("/x/ddp.yaml", 2, None) == "accelerate: your config /x/ddp.yaml (2 processes)"
    (tmp_path / "hf" / "accelerate").mkdir(parents=True)
    (tmp_path / "hf" / "accelerate" / "default_config.yaml").write_text("distributed_type: MULTI_GPU\n")
    said = launch_config.describe(None, 1, None)
    assert (
        said.startswith("accelerate: none (one process started directly") and "default_config.yaml is not read" in said
    )
    said = launch_config.describe(None, 2, None)
    assert (
        "w2s renders JOB_DIR/accelerate.yaml (MULTI_GPU, 2 processes)" in said
        and "default_config.yaml is not read" in said
    )
    assert launch_config.describe("/x/one.yaml", 1, None) == "accelerate: your config /x/one.yaml (1 process)"


def test_pick_port_skips_ports_held_by_jobs_or_bound_by_others():
    first = pick_port(set())
    assert pick_port({first}) != first
    with socket.socket() as other:
        other.bind(("", first))
        assert pick_port(set()) != first
    table = SlotTable(device_slots(gpus=["0", "1", "2", "3"]))
    a, b = table.take_gpus("a" * 64, ["0", "1"]), table.take_gpus("b" * 64, ["2", "3"])
    assert a.port != b.port and a.env["W2S_DEVICE"] == "cuda:0,1"
    with pytest.raises(ValueError):
        table.take_gpus("c" * 64, ["0", "1"])  # no free slot: nothing taken, no port held
    assert set(table.ports) == {"a" * 64, "b" * 64}
