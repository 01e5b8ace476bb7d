"""Launch commands and accelerate configs as w2s renders them (issue 14): a 2-GPU job and two concurrent ones
(each with its own port, recorded), a default accelerate config that must not be read, FSDP per layer with
use_orig_params, and what `--dry-run` says. No GPU: the supervisor's start step runs for real with
`processes.launch` capturing the command, and accelerate's own argument handling reads the commands.
"""

from __future__ import annotations

import json
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
    one = launch_config.command(jobs[0], None)
    assert one[3:5] == ["--config_file", str(jobs[0] / "accelerate.yaml")]
    assert yaml.safe_load((jobs[0] / "accelerate.yaml").read_text())["distributed_type"] == "NO"
    two = launch_config.command(jobs[1], None, 2, 29611)
    rendered = yaml.safe_load((jobs[1] / "accelerate.yaml").read_text())
    assert rendered["num_processes"] == 2 and rendered["main_process_port"] == 29611
    assert rendered["distributed_type"] == "MULTI_GPU" and rendered["num_machines"] == 1
    fsdp = launch_config.command(jobs[2], None, 2, 29612, launch_config.fsdp_config("GPT2Block"))
    # the command w2s built before issue 14 with a default config present: the default leaked into it
    before = [*one[:3], "--multi_gpu", "--num_processes", "2", "--gpu_ids", "all", "--main_process_port", "0", *one[5:]]
    seen = accelerate_reads([one, two, fsdp, before], hf)
    assert seen[0]["num_processes"] == 1 and not seen[0]["multi_gpu"] and not seen[0]["use_fsdp"]
    for args in seen[:3]:
        assert args["num_machines"] == 1 and args["machine_rank"] == 0 and args["main_process_ip"] is None
        assert args["gpu_ids"] == "all" and args["mixed_precision"] == "no" and not args["cpu"]
    assert seen[1]["multi_gpu"] and seen[1]["main_process_port"] == 29611 and seen[1]["num_processes"] == 2
    assert seen[2]["use_fsdp"] and not seen[2]["multi_gpu"] and seen[2]["main_process_port"] == 29612
    assert seen[2]["fsdp_transformer_layer_cls_to_wrap"] == "GPT2Block" and seen[2]["fsdp_use_orig_params"]
    assert seen[2]["fsdp_sharding_strategy"] == "FULL_SHARD"
    assert seen[3]["num_machines"] == 2 and seen[3]["machine_rank"] == 1  # it would wait for a second machine


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
        "accelerate: flags only (NO, 1 process; no default config on this machine)"
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
    assert "w2s renders JOB_DIR/accelerate.yaml (NO, 1 process)" in said and "default_config.yaml is not read" in said


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
