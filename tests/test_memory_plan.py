"""The memory plan (issue 14): model sizes without a download, each strategy's estimate against hand-computed
figures, the registry's defaults for models of 3B and more, `w2s run --dry-run`'s plan and refusal of a job
that cannot fit, at `w2s run` and by the supervisor.

No GPU and no download: sizes come from the registry's figures or config.json files the tests write (a
local folder, or a fake Hugging Face cache), and the counts are checked against transformers' own models
built on the meta device.
"""

from __future__ import annotations

import json

import pytest
from conftest import small_recipe

from w2s_core import cli
from w2s_core.errors import InputError
from w2s_core.spec import memory
from w2s_core.spec.memory import GIB, estimate, options, plan
from w2s_core.spec.plan import build_plan
from w2s_core.spec.recipe import load_recipe
from w2s_core.spec.registry import MODEL_DEFAULTS, MODEL_SHAPES, model_defaults
from w2s_core.spec.shapes import from_config, model_shape
from w2s_core.store import Store
from w2s_core.supervision import planning, requests
from w2s_core.supervision.loop import Supervisor
from w2s_core.supervision.requests import Submit
from w2s_core.supervision.slots import device_slots

QWEN2_7B_BODY = 7_070_619_136  # Qwen2Model (no LM head), from its config's figures
QWEN2_7B_EMBED = 152064 * 3584


def spec(name: str, **train) -> dict:
    """A job spec of the registry model `name` with its defaults (as a recipe with no [train] overrides gets)."""
    m = model_defaults(name)
    t = {k: m[k] for k in ("lr", "batch_size", "minibatch_size", "max_length", "grad_checkpointing", "dtype")}
    t.update({"mode": "finetune", "optimizer": m.get("optimizer", "adam"), "lora": False, **train})
    return {"model": {"name": name, "path": name}, "train": t, "data": {}}


# -- sizes -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, params",
    [
        ("gpt2", 124_439_808),
        ("gpt2-xl", 1_557_611_200),  # the 1.56e9 of the paper's tables
        ("EleutherAI/pythia-70m", 70_426_624),
        ("Qwen/Qwen2-7B", 7_615_616_512),
        ("meta-llama/Llama-2-7b-hf", 6_738_415_616),
        ("mistralai/Mistral-7B-v0.1", 7_241_732_096),
    ],
)
def test_registry_figures_give_the_published_parameter_counts(name, params):
    shape = model_shape({"name": name, "path": name})
    assert shape.params == params and shape.source == "registry"


CONFIGS = {
    "gpt2": {"model_type": "gpt2", "n_embd": 64, "n_layer": 3, "n_head": 4, "vocab_size": 1000, "n_positions": 128},
    "llama": {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "intermediate_size": 176, "vocab_size": 1000},
    "qwen2": {"model_type": "qwen2", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "intermediate_size": 176, "vocab_size": 1000, "tie_word_embeddings": False},
    "gpt_neox": {"model_type": "gpt_neox", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                 "intermediate_size": 256, "vocab_size": 1000},
    "bert": {"model_type": "bert", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
             "intermediate_size": 256, "vocab_size": 1000, "max_position_embeddings": 128, "type_vocab_size": 2},
}  # fmt: skip


@pytest.mark.parametrize("family", sorted(CONFIGS))
def test_counts_from_a_config_json_match_the_model_transformers_builds(tmp_path, family):
    """What the trainer loads (AutoModel: no LM head, no pooler) has exactly the parameters counted."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    folder = tmp_path / family
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(CONFIGS[family]))
    shape = model_shape({"name": family, "path": str(folder)})
    config = AutoConfig.from_pretrained(folder)
    with torch.device("meta"):
        body = AutoModel.from_config(config)
        full = AutoModelForCausalLM.from_config(config) if family != "bert" else body
    pooler = sum(p.numel() for n, p in body.named_parameters() if n.startswith("pooler."))
    assert shape.body_params() == sum(p.numel() for p in body.parameters()) - pooler
    assert shape.params == sum(p.numel() for p in full.parameters()) - pooler
    assert shape.source == f"config.json in {folder}"


def test_tiny_models_are_counted_as_built(w2s_cache):
    import torch

    from w2s_core.training.models import load_backbone

    for path in ("tiny-random-gpt2", "tiny-random-bert"):
        model = {"name": path, "path": path, "tiny": {"hidden_size": 24, "num_layers": 3}}
        backbone = load_backbone(model, torch.float32)
        assert model_shape(model).body_params() == sum(p.numel() for p in backbone.parameters())


def test_a_cached_config_json_wins_over_the_registry_and_nothing_is_downloaded(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    repo = tmp_path / "hub" / "models--gpt2"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "config.json").write_text(json.dumps({**CONFIGS["gpt2"], "n_layer": 1}))
    cached = model_shape({"name": "gpt2", "path": "gpt2"})
    assert cached.layers == 1 and cached.source == "config.json in the Hugging Face cache"
    assert model_shape({"name": "gpt2", "path": "gpt2", "revision": "v2"}).layers == 12  # not cached: registry
    assert model_shape({"name": "someone/unknown-7b", "path": "someone/unknown-7b"}) is None
    assert from_config({"model_type": "gpt2"}, "x") is None  # no sizes: unknown, never a guess


# -- estimates against hand-computed figures -------------------------------------------------------------


def test_qwen2_7b_full_finetune_is_16_bytes_per_parameter_before_activations():
    e = estimate(spec("Qwen/Qwen2-7B", dtype="auto"))
    p = QWEN2_7B_BODY
    assert e.strategy == "full" and e.params == p
    assert (e.parts["weights"], e.parts["gradients"], e.parts["optimizer"]) == (4.0 * p, 4.0 * p, 8.0 * p)
    assert e.parts["working copies"] == 2.0 * (p - QWEN2_7B_EMBED)  # bf16 autocast copies of the layers
    states = sum(e.parts[k] for k in ("weights", "gradients", "optimizer")) / GIB
    assert states == pytest.approx(16 * 7.0706e9 / GIB, rel=1e-4)  # ~105 GiB (the LM head's 7.6e9: ~113)
    assert e.gib > 105 and not e.fits(80.0) and not e.fits(141.0)


def test_gpt2_xl_activations_with_checkpointing_by_hand():
    e = estimate(spec("gpt2-xl"))  # minibatch 4 at 1024 tokens, checkpointing, as the registry says
    h, i, layers, tokens = 1600, 6400, 48, 4 * 1024
    layer = tokens * (2 * (5 * h + 2 * h + 2 * i) + 4 * 2 * h)  # bf16 activations, float32 residual stream
    saved = memory.SAVED[(False, "full")]  # what GPT-2's layers keep per counted byte (measured)
    kept = layers * tokens * 4 * h + layer * saved  # each layer's input, and one layer recomputed
    assert e.parts["activations"] == kept + layer  # + the backward's working set
    no_ckpt = estimate(spec("gpt2-xl", grad_checkpointing=False))
    assert no_ckpt.parts["activations"] == layers * layer * saved + tokens * 4 * h + layer
    assert e.params == 1_557_611_200 and e.parts["weights"] == 4.0 * 1_557_611_200


def test_bf16_adafactor_lora_probe_and_fsdp_by_hand():
    p, vocab, h = 1_557_611_200, 50257, 1600
    bf16 = estimate(spec("gpt2-xl", dtype="bfloat16", optimizer="adafactor"))
    assert bf16.strategy == "full-bf16" and bf16.parts["weights"] == 2.0 * p == bf16.parts["gradients"]
    assert bf16.parts["working copies"] == 3 * 4.0 * vocab * h  # float32 copies of its largest tensor
    per_layer = sum(a + b for a, b in [(h, h)] * 4 + [(h, 4 * h), (4 * h, h)])
    assert bf16.parts["optimizer"] == 2.0 * (48 * per_layer + vocab + h)  # factored second moments

    lora = estimate(spec("gpt2-xl", lora=True))
    adapters = 48 * 8 * per_layer  # rank 8 on q, k, v, o and both MLP matrices
    assert lora.trainable == adapters == 11_059_200
    assert lora.parts["weights"] == 2.0 * p + 4.0 * adapters and lora.parts["optimizer"] == 8.0 * adapters

    probe = estimate(spec("gpt2-xl", mode="probe"))
    assert probe.strategy == "probe" and set(probe.parts) == {"weights", "activations"}
    assert probe.parts["weights"] == 2.0 * p and probe.gib < 5

    one, four = estimate(spec("gpt2-xl"), 1), estimate(spec("gpt2-xl"), 4, sharded=True)
    assert four.parts["optimizer"] == one.parts["optimizer"] / 4 and four.sharded
    ddp = estimate(spec("gpt2-xl"), 2)
    assert ddp.parts["DDP buckets"] == one.parts["gradients"] and not ddp.sharded


def test_plan_shards_only_when_a_replica_does_not_fit_and_options_name_what_would():
    big = spec("Qwen/Qwen2-7B", dtype="auto", grad_checkpointing=True, minibatch_size=1)
    assert plan(big, 4, 80.0, "auto").sharded and plan(big, 4, 80.0, "auto").fits(80.0)
    assert not plan(big, 4, 80.0, False).sharded and not plan(big, 4, None, "auto").sharded
    assert not plan(spec("gpt2-xl"), 4, 80.0, "auto").sharded  # a replica fits: DDP
    # bf16 weights with a float32 head cannot be FSDP1's flat parameters: never sharded by w2s
    assert not memory.can_shard(spec("Qwen/Qwen-7B")) and memory.can_shard(big)
    ways = options(spec("Qwen/Qwen2-7B", dtype="auto"), 1, 80.0)
    assert any(w.startswith("lora = true (") for w in ways)
    assert any(w.startswith('dtype = "bfloat16" with optimizer = "adafactor"') for w in ways)
    assert any("[launch] gpus_per_job = " in w and "FSDP" in w for w in ways)
    for w in ways:  # each option's own figure fits
        assert float(w.rsplit("(", 1)[1].split(" GiB")[0]) + memory.CONTEXT_GIB <= memory.USABLE * 80


def test_registry_defaults_of_3b_and_more_fit_one_80gb_gpu_and_smaller_entries_are_untouched():
    for name, entry in MODEL_DEFAULTS.items():
        shape = model_shape({"name": name, "path": name})
        if shape is not None and shape.params >= 3e9 and name != "Qwen/Qwen-72B":
            e = plan(spec(name), 1, 80.0)
            assert e.fits(80.0), (name, e.gib)
            assert not estimate(spec(name, dtype="auto", optimizer="adam")).fits(80.0)  # what it replaced
        elif shape is not None and shape.params < 3e9:
            assert "optimizer" not in entry and entry.get("dtype") in (None, "float32"), name
    # Qwen-72B (bf16 + Adafactor, the reference's) fits nowhere single; the options say how it would
    ways = options(spec("Qwen/Qwen-72B"), 1, 80.0)
    assert ways and all("FSDP" in w for w in ways)
    assert set(MODEL_SHAPES) >= {n for n in MODEL_DEFAULTS if not n.startswith("tiny-")}


# -- w2s run --dry-run and refusal -------------------------------------------------------------------------

BIG = '[[models]]\nname = "gpt2-xl"\n[[models]]\nname = "Qwen/Qwen2-7B"\n'


def big_recipe(models: str = BIG) -> str:
    """Two real model names, 80 GiB GPUs; inputs cut, not dropped (so no tokenizer is needed: no download)."""
    text = small_recipe("big", models).replace("n_test = 20\n", 'n_test = 20\nlong_inputs = "truncate_right"\n')
    return text + "[launch]\ngpu_memory_gb = 80\n"


def test_dry_run_prints_each_jobs_estimate_strategy_and_verdict(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU here: the plan is against gpu_memory_gb
    recipe = tmp_path / "big.toml"
    recipe.write_text(big_recipe())
    assert cli.main(["run", str(recipe), "--results-dir", str(tmp_path / "res"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    plan_lines = out[out.index("memory plan") :].splitlines()
    assert "GPUs of 80.0 GiB ([launch] gpu_memory_gb)" in plan_lines[0]
    jobs = build_plan(load_recipe(recipe)).jobs
    for job in jobs:
        line = next(x for x in plan_lines if job.short in x)
        e = estimate(job.spec)
        assert f"{job.model}: {memory.size_text(e.gib * GIB)} per GPU on 1 GPU" in line and e.what in line
        assert ("DOES NOT FIT" in line) == (job.model == "Qwen/Qwen2-7B") and "accelerate: " in line
    assert "full finetune, float32 weights (bf16 autocast), Adam, gradient checkpointing" in out  # gpt2-xl
    assert "options: lora = true (" in out
    assert "weights 5.8 GiB, gradients 5.8 GiB, optimizer 11.6 GiB" in out  # gpt2-xl's parts


def test_dry_run_says_fsdp_true_does_nothing_for_one_process_jobs(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    for gpus, noted in (("", True), ("gpus_per_job = 2\n", False)):
        recipe = tmp_path / "fsdp.toml"
        recipe.write_text(
            big_recipe('[[models]]\nname = "gpt2"\n[[models]]\nname = "gpt2-xl"\n') + "fsdp = true\n" + gpus
        )
        assert cli.main(["run", str(recipe), "--results-dir", str(tmp_path / "res"), "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert ("note: [launch] fsdp = true shards only a job of several processes" in out) == noted, out


def test_run_refuses_a_job_that_cannot_fit_before_anything_is_queued(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    recipe = tmp_path / "big.toml"
    recipe.write_text(big_recipe())
    root = tmp_path / "res"
    assert cli.main(["run", str(recipe), "--results-dir", str(root), "--detach"]) == InputError.exit_code
    err = capsys.readouterr().err
    assert "2 job(s) would not fit the GPUs" in err and "Qwen/Qwen2-7B needs about 155.7 GiB per GPU" in err
    assert "options: lora = true (" in err and "gpt2-xl needs" not in err
    assert not requests.pending(root)

    # the supervisor refuses the same submission against its own GPUs
    request = Submit(recipe_path=str(recipe), recipe_text=recipe.read_text(), argv=["t"], provenance={}, cwd=".")
    with Store.open(tmp_path / "res2") as store:
        sup = Supervisor(store, device_slots(gpus=["0"]), echo=lambda m: None)
        with pytest.raises(InputError, match="would not fit the GPUs"):
            sup.apply(request)
        assert store.jobs() == []
    # with LoRA for the 7B every job fits; without GPUs nothing is refused (jobs run on the CPU there)
    lora = load_recipe_text(tmp_path, BIG.replace('"Qwen/Qwen2-7B"\n', '"Qwen/Qwen2-7B"\nlora = true\n'))
    planning.check_memory(build_plan(lora).jobs, lora.launch, "r.toml", ["0"])
    big = load_recipe(recipe)
    planning.check_memory(build_plan(big).jobs, big.launch, "r.toml", [])
    with pytest.raises(InputError, match="would not fit"):
        planning.check_memory(build_plan(big).jobs, big.launch, "r.toml", [], slurm=True)  # the partition's GPUs


def load_recipe_text(tmp_path, models: str):
    path = tmp_path / "other.toml"
    path.write_text(big_recipe(models))
    return load_recipe(path)


def test_float16_full_finetune_keeps_float32_master_weights_in_the_plan():
    """The trainer runs a float16 full finetune as float32 master weights, fp16 autocast and loss scaling
    (training/precision.py): the plan counts it as the "auto" one, not as 16-bit weights."""
    p = 1_557_611_200
    fp16, auto = estimate(spec("gpt2-xl", dtype="float16")), estimate(spec("gpt2-xl", dtype="auto"))
    assert fp16.strategy == "full" and fp16.parts["weights"] == 4.0 * p == fp16.parts["gradients"]
    assert fp16.parts["optimizer"] == 8.0 * p
    assert fp16.parts["working copies"] == auto.parts["working copies"] > 0
    assert "fp16 autocast" in fp16.what


def test_sizes_read_in_gib_from_one_gib_and_in_mib_below():
    assert memory.size_text(1.5 * GIB) == "1.5 GiB" and memory.size_text(12 * 2**20) == "12 MiB"
    assert memory.size_text(GIB) == "1.0 GiB"


def test_the_memory_benchmark_trains_the_settings_and_batch_shape_its_estimate_reads(tmp_path, monkeypatch):
    """benchmarks/memory_plan.py sets memory.estimate(job) beside the trainer's peak on the same job (on a GPU):
    each case's spec is valid, sized from its own config.json, takes the strategy the case is meant to
    measure with the registry's settings for the real model, and its inputs are what the estimate counts
    (every pass minibatch_size x max_length tokens, unpadded)."""
    import importlib.util
    import sys

    from w2s_core.spec.schema import TRAIN_KEYS
    from w2s_core.training.world import step_shape

    monkeypatch.setattr(sys, "path", list(sys.path))  # the benchmark puts benchmarks/ on it
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "memory_plan.py"
    loader = importlib.util.spec_from_file_location("memory_plan_benchmark", path)
    bench = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(bench)
    from trainer_speed import MODELS

    for case, (model, registry_name, changes, strategy) in bench.CASES.items():
        folder = tmp_path / model / "model"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps({"vocab_size": 1000, **MODELS[model]}))
        job = bench.case_job(tmp_path / model, case)
        train = job["train"]
        assert [k for k, v in train.items() if TRAIN_KEYS[k](v) is not None] == [], case
        for key in ("minibatch_size", "max_length", "grad_checkpointing", "dtype"):
            assert train[key] == changes.get(key, model_defaults(registry_name)[key]), (case, key)
        e = estimate(job)
        assert (e.strategy, e.source) == (strategy, f"config.json in {folder}"), case
        ids, labels = bench.case_inputs(job, 50, 2)
        assert len(ids) == len(labels) == 2 * train["batch_size"] and max(map(max, ids)) < 50
        assert {len(x) for x in ids} == {train["max_length"]}  # no padding: minibatch x max_length tokens
        assert step_shape(train, 1)[0] == train["minibatch_size"], case  # the trainer's pass is the estimate's
