"""Honest device use (issue 14): MIG instances from a recorded `nvidia-smi -L`, GPUs busy with other processes,
finding GPUs without nvidia-smi, and a job placed on a GPU that finds no CUDA failing at once, saying why,
instead of training on the CPU while the store says cuda. No GPU needed: nvidia-smi is a script printing a
recorded listing, NVML's reading is a list of fake GpuStates.
"""

from __future__ import annotations

import os
import stat

import pytest
from conftest import small_recipe
from test_placement import gpu

from w2s_core.errors import W2SError
from w2s_core.status import JobStatus
from w2s_core.store import Store
from w2s_core.supervision import planning, runner, slots
from w2s_core.supervision.loop import Supervisor
from w2s_core.supervision.placement import Need, place
from w2s_core.supervision.requests import Submit
from w2s_core.supervision.slots import SlotTable, device_slots, mig_memory_gb, parse_listing, pool_ids

# `nvidia-smi -L` on an H100 box with MIG enabled on GPU 0 (two 3g.40gb instances) and GPU 2 (a 4g.40gb
# and a 1g.10gb one), GPU 1 whole; GPU 2 in the older drivers' MIG-GPU-<uuid>/<gi>/<ci> spelling.
MIG_LISTING = """\
GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77)
  MIG 3g.40gb     Device  0: (UUID: MIG-c7384736-a75d-5afc-978f-d2f1294409fd)
  MIG 3g.40gb     Device  1: (UUID: MIG-a28ad590-3fda-56dd-84fc-0a0b96edc58d)
GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9)
GPU 2: NVIDIA H100 80GB HBM3 (UUID: GPU-77aa88bb-99cc-0dd1-1ee2-2ff344556677)
  MIG 4g.40gb Device 0: (UUID: MIG-GPU-77aa88bb-99cc-0dd1-1ee2-2ff344556677/1/0)
  MIG 1g.10gb Device 1: (UUID: MIG-GPU-77aa88bb-99cc-0dd1-1ee2-2ff344556677/9/0)
"""
MIGS = [
    "MIG-c7384736-a75d-5afc-978f-d2f1294409fd",
    "MIG-a28ad590-3fda-56dd-84fc-0a0b96edc58d",
    "1",
    "MIG-GPU-77aa88bb-99cc-0dd1-1ee2-2ff344556677/1/0",
    "MIG-GPU-77aa88bb-99cc-0dd1-1ee2-2ff344556677/9/0",
]


@pytest.fixture
def nvidia_smi(tmp_path, monkeypatch):
    """An `nvidia-smi` on PATH that prints what the test writes to the returned file for `-L`."""
    listing = tmp_path / "listing.txt"
    script = tmp_path / "bin" / "nvidia-smi"
    script.parent.mkdir()
    script.write_text(f'#!/bin/sh\n[ "$1" = "-L" ] && cat {listing} && exit 0\nexit 9\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    return listing


# -- MIG ---------------------------------------------------------------------------------------------------


def test_mig_instances_are_the_pool_addressed_by_uuid(nvidia_smi):
    listed = parse_listing(MIG_LISTING)
    assert [(g.index, len(g.migs)) for g in listed] == [(0, 2), (1, 0), (2, 2)]
    assert [profile for g in listed for profile, _ in g.migs] == ["3g.40gb", "3g.40gb", "4g.40gb", "1g.10gb"]
    assert pool_ids(listed) == MIGS and listed[1].name == "NVIDIA H100 80GB HBM3"
    assert (mig_memory_gb("3g.40gb"), mig_memory_gb("1g.10gb"), mig_memory_gb("7g.80gb")) == (40.0, 10.0, 80.0)

    nvidia_smi.write_text(MIG_LISTING)
    assert slots.visible_gpus() == MIGS
    made = device_slots()
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in made] == MIGS
    assert made[0].name == f"cuda:{MIGS[0]}" and made[0].env["W2S_DEVICE"] == f"cuda:{MIGS[0]}"
    # the plan's GPU memory on MIG instances: the smallest profile's
    assert planning.gpu_memory({}, MIGS[:2] + MIGS[3:], read=lambda: None)[0] == 10.0
    assert planning.gpu_memory({}, MIGS[:2], read=lambda: None) == (40.0, "the smallest GPU w2s may use (NVML)")


def test_a_multi_gpu_job_never_spans_mig_instances():
    table = SlotTable(device_slots(gpus=MIGS))
    never = place(table, "a" * 64, Need(2), read=lambda: None)
    assert never.slot is None and "MIG instances" in never.never and "needs 2 whole GPUs" in never.never
    one = place(table, "b" * 64, Need(1), read=lambda: None)
    assert one.slot.env["CUDA_VISIBLE_DEVICES"] == MIGS[0]
    two_whole = SlotTable(device_slots(gpus=["0", "1", MIGS[0]]))
    placed = place(two_whole, "c" * 64, Need(2), read=lambda: None)
    assert placed.slot.gpus == ("0", "1") and placed.slot.port is not None


# -- busy GPUs ---------------------------------------------------------------------------------------------


def test_a_gpu_busy_with_other_processes_is_passed_over_unless_min_free_gb_allows():
    reading = [gpu(0, free_gb=50.0, procs=[(999, 30.0)]), gpu(1, free_gb=80.0)]
    table = SlotTable(device_slots(gpus=["0", "1"]))
    first = place(table, "a" * 64, Need(1), read=lambda: reading)
    assert first.slot.name == "cuda:1" and first.slot.memory_gib == 80.0  # GPU 0 is someone else's
    waiting = place(table, "b" * 64, Need(1), read=lambda: reading)
    assert waiting.slot is None
    assert waiting.wait == (
        "waits for a GPU no other process uses: GPU 0 has 30.0 GB in use by others, 1 process(es) "
        "(set [launch] min_free_gb to share them)"
    )
    shared = place(table, "b" * 64, Need(1, 40.0), read=lambda: reading)  # 50 GB free: enough
    assert shared.slot.name == "cuda:0"
    # a GPU a w2s job holds is judged by its slots alone (its own job's memory is no stranger's)
    two = SlotTable(device_slots(jobs_per_gpu=2, gpus=["0"]))
    assert place(two, "c" * 64, Need(1), read=lambda: [gpu(0, 80.0)]).slot is not None
    assert place(two, "d" * 64, Need(1), read=lambda: [gpu(0, 20.0, procs=[(4242, 60.0)])]).slot is not None
    # no NVML reading: nothing is passed over
    assert place(SlotTable(device_slots(gpus=["0"])), "e" * 64, Need(1), read=lambda: None).slot is not None


# -- finding GPUs without nvidia-smi ------------------------------------------------------------------------


def test_without_nvidia_smi_nvml_then_torch_count_where_a_driver_is(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    from w2s_core.supervision import nvml

    monkeypatch.setattr(nvml, "read_gpus", lambda: [gpu(0, 80.0), gpu(3, 80.0)])
    assert slots.visible_gpus() == ["0", "3"]
    monkeypatch.setattr(nvml, "read_gpus", lambda: None)
    monkeypatch.setattr(slots, "torch_cuda_count", lambda: pytest.fail("no driver: torch is not asked"))
    monkeypatch.setattr(slots, "driver_present", lambda: False)
    assert slots.visible_gpus() == []
    monkeypatch.setattr(slots, "driver_present", lambda: True)
    monkeypatch.setattr(slots, "torch_cuda_count", lambda: 2)
    assert slots.visible_gpus() == ["0", "1"]


def test_the_torch_probe_runs_in_a_subprocess_once_with_a_timeout(monkeypatch):
    import torch

    monkeypatch.setattr(slots, "_torch_count", [])
    assert slots.torch_cuda_count(timeout=0.001) is None  # too slow to answer: unknown, not a crash
    monkeypatch.setattr(slots, "_torch_count", [])
    assert slots.torch_cuda_count() == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    monkeypatch.setattr(slots.subprocess, "run", lambda *a, **k: pytest.fail("asked once per process"))
    assert slots.torch_cuda_count() is not None


# -- a GPU slot without CUDA ----------------------------------------------------------------------------------


def test_the_trainer_refuses_a_gpu_slot_it_cannot_use():
    import torch

    from w2s_core.training.device import check_device

    check_device({})  # a job run by hand: not checked
    check_device({"W2S_DEVICE": "cpu", "CUDA_VISIBLE_DEVICES": ""})
    if torch.cuda.is_available():
        pytest.skip("this torch has CUDA: the refusal is for machines where it has none")
    with pytest.raises(W2SError) as err:
        check_device({"W2S_DEVICE": "cuda:1,3", "CUDA_VISIBLE_DEVICES": "1,3"})
    text = str(err.value)
    assert text.startswith("the supervisor placed this job on cuda:1,3, but ") and "rather than run on the CPU" in text
    assert ("CPU-only build" in text) == (torch.version.cuda is None)


def test_a_job_placed_on_a_gpu_without_cuda_fails_saying_so(tmp_path, w2s_cache, monkeypatch):
    """The whole path: a slot on "GPU 0" of a machine whose torch has no CUDA; the job fails, diagnosed."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this torch has CUDA")
    models = '[[models]]\nname = "a"\npath = "tiny-random-bert"\n[[models]]\nname = "b"\npath = "tiny-random-gpt2"\n'
    recipe = tmp_path / "r.toml"
    recipe.write_text(small_recipe("r", models))
    monkeypatch.setattr(runner, "POLL_S", 0.05)
    request = Submit(recipe_path=str(recipe), recipe_text=recipe.read_text(), argv=["t"], provenance={}, cwd=".")
    with Store.open(tmp_path / "res") as store:
        sup = Supervisor(store, device_slots(gpus=["0", "1"]), echo=lambda m: None)  # both GT jobs at once
        sup.apply(request)
        sup.run()
        gt = [j for j in store.jobs() if j["kind"] == "gt"]
        assert {j["status"] for j in gt} == {JobStatus.FAILED} and {j["device"] for j in gt} == {"cuda:0", "cuda:1"}
        for job in gt:  # nothing trained on the CPU; the trainer's own words are the diagnosis
            assert f"exited with code 1: the supervisor placed this job on {job['device']}, but this" in job["error"]
        assert {j["status"] for j in store.jobs() if j["kind"] != "gt"} == {JobStatus.SKIPPED}
