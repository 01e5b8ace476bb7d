"""Causal LMs that load, and the optimizer choice (issue 9, item 3).

- Tiny random-init Qwen2, Llama, GPT-NeoX (Pythia) and GPT-2 checkpoints, saved as their
  ForCausalLM classes (as hub checkpoints are), load through the real `from_pretrained(dir)` path:
  the backbone gets the checkpoint's weights, pools a padded batch as each example alone, and
  trains a short job.
- A Qwen-1-style repo (its own code, `auto_map` with only AutoConfig and AutoModelForCausalLM, a
  tokenizer with neither pad nor eos) loads through AutoModelForCausalLM's body, and a real token
  equal to the fallback pad id (0, "!" as in the GPT-2 and Qwen vocabularies) is still pooled.
- `[train] optimizer`: adam (default, old job keys), adamw, adafactor (the reference's
  relative-step Adafactor); each trains; a bad value is a recipe error naming the key.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import train_in_process
from transformers import (
    AutoModelForCausalLM,
    GPT2Config,
    GPT2LMHeadModel,
    GPTNeoXConfig,
    LlamaConfig,
    Qwen2Config,
)

from w2s_core.errors import InputError, W2SError
from w2s_core.jobdir import Event, JobDir
from w2s_core.spec.models import tiny_vocab
from w2s_core.spec.plan import build_plan
from w2s_core.spec.recipe import parse_recipe
from w2s_core.spec.registry import model_defaults
from w2s_core.spec.schema import OPTIMIZERS
from w2s_core.training import models
from w2s_core.training.optimizers import make_optimizer
from w2s_core.training.tiny import word_level_tokenizer

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

# id 0 is "!", as in the GPT-2 and Qwen vocabularies: the reference pools the last id that is not 0
VOCAB = {"!": 0, **{tok: i + 1 for i, tok in enumerate(tiny_vocab())}}
SMALL = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 128,
    "vocab_size": len(VOCAB),
}
CONFIGS = {
    "qwen2": lambda: Qwen2Config(**SMALL, num_key_value_heads=1),
    "llama": lambda: LlamaConfig(**SMALL, num_key_value_heads=1),
    "gpt_neox": lambda: GPTNeoXConfig(**SMALL),
    "gpt2": lambda: GPT2Config(
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_positions=128,
        vocab_size=len(VOCAB),
        bos_token_id=VOCAB["[BOS]"],
        eos_token_id=VOCAB["[EOS]"],
    ),
}
# each family's special tokens: Qwen2 pads with its eos, Llama and Pythia/GPT-2 have no pad token
TOKENIZERS = {
    "qwen2": dict(pad_token="[EOS]", eos_token="[EOS]"),
    "llama": dict(template="[BOS] $A", bos_token="[BOS]", eos_token="[EOS]", unk_token="[UNK]"),
    "gpt_neox": dict(bos_token="[BOS]", eos_token="[EOS]"),
    "gpt2": dict(eos_token="[EOS]"),
}
BODY = {"qwen2": "Qwen2Model", "llama": "LlamaModel", "gpt_neox": "GPTNeoXModel", "gpt2": "GPT2Model"}
# a trailing "!" (id 0) and rows of different lengths, so the batch has padding
TEXTS = ["the movie was great !", "not good", "a very dull and boring film with a weak plot !", "!", ""]

# A Qwen-1-style repository: its own config and model code, and an auto_map without AutoModel.
REMOTE_CONFIG = """from transformers import GPT2Config


class ToyQWenConfig(GPT2Config):
    model_type = "toyqwen"
"""
REMOTE_MODEL = """from transformers import GPT2LMHeadModel

from .configuration_toyqwen import ToyQWenConfig


class ToyQWenLMHeadModel(GPT2LMHeadModel):
    config_class = ToyQWenConfig
"""
AUTO_MAP = {
    "AutoConfig": "configuration_toyqwen.ToyQWenConfig",
    "AutoModelForCausalLM": "modeling_toyqwen.ToyQWenLMHeadModel",
}


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """A fresh w2s cache. (Hugging Face copies the remote code it imports into its modules cache, as
    for any trust_remote_code model; that import path is process-wide, so it is left as it is.)"""
    monkeypatch.setenv("W2S_CACHE", str(tmp_path / "w2s-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # hidden size 32: more threads only contend (about 8x slower on 2 busy cores)
    yield
    torch.set_num_threads(threads)


def save_causal_lm(kind: str, dest: Path, seed: int = 0) -> torch.nn.Module:
    """A random-init ForCausalLM of `kind` and its tokenizer, saved like a hub checkpoint; returns the LM."""
    roles = dict(TOKENIZERS[kind])
    template = roles.pop("template", "$A")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        lm = AutoModelForCausalLM.from_config(CONFIGS[kind]())
    lm.save_pretrained(dest)
    word_level_tokenizer(VOCAB, template, **roles).save_pretrained(dest)
    return lm


def save_qwen1_style(dest: Path) -> torch.nn.Module:
    """A GPT-2 body under a remote-code LM class whose config has no AutoModel mapping; no pad, eos or unk token."""
    lm = save_causal_lm("gpt2", dest)
    config = json.loads((dest / "config.json").read_text())
    config.update(model_type="toyqwen", architectures=["ToyQWenLMHeadModel"], auto_map=AUTO_MAP)
    (dest / "config.json").write_text(json.dumps(config))
    (dest / "configuration_toyqwen.py").write_text(REMOTE_CONFIG)
    (dest / "modeling_toyqwen.py").write_text(REMOTE_MODEL)
    word_level_tokenizer(VOCAB).save_pretrained(dest)  # Qwen-1's tokenizer has neither pad nor eos
    return lm


def spec_of(path: Path, **overrides) -> dict:
    return {**model_defaults(str(path)), **overrides}


def pooled_alone_and_batched(model, tok) -> tuple[torch.Tensor, list[torch.Tensor]]:
    model.eval()
    ids = models.encode(tok, TEXTS, 64)
    input_ids, mask = models.collate(ids, tok.pad_token_id)
    assert mask.sum(1).min() < input_ids.shape[1]  # the batch really has padding
    with torch.no_grad():
        batched = model.features(input_ids, mask)
        alone = [model.features(torch.tensor([seq]), torch.ones(1, len(seq), dtype=torch.long))[0] for seq in ids]
    return batched, alone


def assert_same_weights(backbone: torch.nn.Module, lm: torch.nn.Module) -> None:
    """The loaded backbone holds the saved checkpoint's body, not a fresh random init."""
    saved, loaded = lm.base_model.state_dict(), backbone.state_dict()
    assert set(saved) == set(loaded)
    assert all(torch.equal(saved[k], loaded[k]) for k in saved)


# --- loading ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(CONFIGS))
def test_causal_lm_checkpoints_load_through_from_pretrained(kind, tmp_path):
    lm = save_causal_lm(kind, tmp_path / kind)
    spec = spec_of(tmp_path / kind)
    assert models.model_arch(spec) == "causal"
    model, tok = models.load_classifier(spec, dtype=torch.float32, lora=None, grad_checkpointing=False)
    assert type(model.backbone).__name__ == BODY[kind] and model.pooling == "last"
    assert_same_weights(model.backbone, lm)
    assert tok.pad_token == "[EOS]"  # its own pad (Qwen2) or its eos (Llama, Pythia, GPT-2)
    batched, alone = pooled_alone_and_batched(model, tok)
    for row, features in enumerate(alone):
        torch.testing.assert_close(batched[row], features, atol=1e-5, rtol=1e-5)
    logits = model(*models.collate(models.encode(tok, TEXTS, 64), tok.pad_token_id))
    assert logits.shape == (len(TEXTS), 2) and torch.count_nonzero(logits) == 0  # the zero head


def test_models_with_an_auto_model_mapping_never_go_through_the_causal_lm_class(tmp_path, monkeypatch):
    """Existing models load exactly as before: AutoModel, the LM class is never asked."""
    save_causal_lm("gpt2", tmp_path / "gpt2")

    def refuse(*args, **kwargs):
        raise AssertionError("AutoModelForCausalLM used for a config AutoModel maps")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", refuse)
    for spec in (spec_of(tmp_path / "gpt2"), model_defaults("tiny-random-gpt2"), model_defaults("tiny-random-bert")):
        assert models.load_backbone(spec, torch.float32) is not None


def test_a_repo_without_an_auto_model_mapping_loads_the_causal_lm_body(tmp_path):
    lm = save_qwen1_style(tmp_path / "qwen1")
    spec = spec_of(tmp_path / "qwen1", trust_remote_code=True)
    config = models._load_config(spec)
    # AutoModel has no class for it (it raises "Unrecognized configuration class"; not called here: 4 s)
    assert not models.has_auto_model(config) and "AutoModel" not in config.auto_map
    model, tok = models.load_classifier(spec, dtype=torch.float32, lora=None, grad_checkpointing=True)
    assert type(model.backbone).__name__ == "GPT2Model" and model.pooling == "last"
    assert model.backbone.is_activation_checkpointing
    assert_same_weights(model.backbone, lm)
    assert tok.pad_token_id == models.NO_PAD_FALLBACK_ID == VOCAB["!"]


def test_a_tokenizer_without_pad_or_eos_pools_a_real_token_equal_to_the_pad_id(tmp_path):
    save_qwen1_style(tmp_path / "qwen1")
    model, tok = models.load_classifier(
        spec_of(tmp_path / "qwen1", trust_remote_code=True), dtype=torch.float32, lora=None, grad_checkpointing=False
    )
    assert tok.pad_token_id == 0 and tok.eos_token is None and tok.unk_token is None
    ids = models.encode(tok, TEXTS, 64)
    assert ids[0][-1] == ids[3][0] == 0  # a real trailing "!" carries the pad id
    batched, alone = pooled_alone_and_batched(model, tok)
    for row, features in enumerate(alone):
        torch.testing.assert_close(batched[row], features, atol=1e-5, rtol=1e-5)
    # pooling by `input_ids != pad_id` (the reference) would have taken the token before the "!"
    hidden = model.backbone(input_ids=torch.tensor([ids[0]]))[0][0]
    assert not torch.allclose(batched[0], hidden[-2], atol=1e-3)


def test_probe_features_of_a_qwen1_style_repo_are_each_example_alone(tmp_path):
    from w2s_core.training import features

    save_qwen1_style(tmp_path / "qwen1")
    spec = spec_of(tmp_path / "qwen1", trust_remote_code=True)
    table = features.cached_features(spec, TEXTS, max_length=64, batch_size=len(TEXTS), device="cpu")
    for row, text in enumerate(TEXTS):
        alone = features.extract_features(spec, [text], max_length=64, batch_size=1, device="cpu")
        torch.testing.assert_close(table[row], alone[0], atol=1e-5, rtol=1e-5)


def test_a_causal_lm_class_without_its_body_is_an_error():
    class Headless(GPT2LMHeadModel):
        base_model_prefix = "no_such_body"

    lm = Headless(CONFIGS["gpt2"]())
    with pytest.raises(W2SError, match="no `no_such_body` submodule"):
        models.causal_lm_body({"name": "odd", "path": "odd"}, lm)


# --- jobs -------------------------------------------------------------------------------------


def gt_job_spec(model_table: str, train: str = "") -> dict:
    """The GT job of a one-model recipe (a self-pair makes one model a valid recipe)."""
    text = f"""
pairs = [["m", "m"]]
[data]
name = "synthetic"
n_train = 48
n_test = 16
[train]
epochs = 1
batch_size = 8
minibatch_size = 4
max_length = 48
dtype = "float32"
{train}
[[models]]
name = "m"
{model_table}
"""
    plan = build_plan(parse_recipe(tomllib.loads(text), Path("test.toml"), text))
    return next(j for j in plan.jobs if j.kind == "gt").spec


def run_job(job_dir: Path, spec: dict) -> tuple[dict, list[dict]]:
    """Train a job in this process, as `python -m w2s_core.training` would; (result, progress events)."""
    train_in_process(job_dir, spec)
    lines = [json.loads(line) for line in JobDir(job_dir).events.read_text().splitlines()]
    return JobDir(job_dir).read_result(), [e for e in lines if Event.KIND not in e]


@pytest.mark.parametrize("kind", [*CONFIGS, "qwen1-style"])
def test_each_causal_lm_trains_a_short_job(kind, tmp_path):
    if kind == "qwen1-style":
        save_qwen1_style(tmp_path / "model")
        table = f'path = "{tmp_path / "model"}"\ntrust_remote_code = true'
    else:
        save_causal_lm(kind, tmp_path / "model")
        table = f'path = "{tmp_path / "model"}"'
    spec = gt_job_spec(table)
    assert spec["model"]["arch"] is None  # not in the registry: detected from the config
    result, events = run_job(tmp_path / "job", spec)
    assert result["steps"] == len(events) > 0 and result["n_test"] == 16
    assert all(math.isfinite(e[Event.LOSS]) for e in events)
    assert len(JobDir(tmp_path / "job").read_predictions()["test"]["probs"]) == 16


# --- optimizers -------------------------------------------------------------------------------


# How far the mean training loss of the last epoch falls below the first's (32 examples, 10 epochs,
# 40 steps): Adam and AdamW fit them (about 0.70 -> 0.35). Adafactor as the reference builds it moves
# each weight matrix by 1% of its RMS per step whatever the lr, and the zero-initialised head by
# 1e-3 · 1e-2 = 1e-5 per step (its RMS is below the 1e-3 floor), so it learns slowly (0.693 -> 0.684).
LOSS_DROP = {"adam": 0.1, "adamw": 0.1, "adafactor": 0.005}
EPOCHS = 10


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_each_optimizer_trains_and_its_loss_goes_down(name, tmp_path):
    spec = gt_job_spec(
        'path = "tiny-random-gpt2"', f'optimizer = "{name}"\nlr = 0.003\nschedule = "constant"\nweight_decay = 0.01'
    )
    spec["data"] = {**spec["data"], "n_train": 64}
    spec["train"] = {**spec["train"], "epochs": EPOCHS}
    assert spec["train"]["optimizer"] == name
    _, events = run_job(tmp_path / name, spec)
    losses = [e[Event.LOSS] for e in events]
    assert losses[0] == pytest.approx(math.log(2))  # the zero head: 50/50 on the first step
    per_epoch = len(losses) // EPOCHS
    first, last = losses[:per_epoch], losses[-per_epoch:]
    assert sum(last) / per_epoch < sum(first) / per_epoch - LOSS_DROP[name], losses


def one_step(name: str, weight_decay: float, lr: float = 0.1) -> torch.Tensor:
    w = torch.nn.Parameter(torch.ones(4, 3))
    opt = make_optimizer(name, [w], lr=lr, weight_decay=weight_decay)
    for group in opt.param_groups:  # as the loop sets the schedule's lr before each step
        group["lr"] = lr
    w.grad = torch.full_like(w, 0.5)
    opt.step()
    return w.detach().clone()


def test_adamw_decays_decoupled_and_equals_adam_without_decay():
    assert torch.equal(one_step("adam", 0.0), one_step("adamw", 0.0))
    # coupled L2 goes through Adam's normalisation (gradient 0.5 + 0.5·1 is still a unit step);
    # decoupled decay shrinks the weights on top of Adam's step
    assert torch.allclose(one_step("adam", 0.5), torch.full((4, 3), 0.9))
    assert torch.allclose(one_step("adamw", 0.5), torch.full((4, 3), 1 - 0.1 - 0.1 * 0.5))


def test_adafactor_uses_the_reference_relative_step_not_the_lr():
    """torch_optimizer.Adafactor(params, lr=lr) with its relative_step default: the lr does not act."""
    assert torch.equal(one_step("adafactor", 0.0, lr=0.1), one_step("adafactor", 0.0, lr=1e-5))
    # step 1: min(1e-2, 1/sqrt(1)) times the weights' RMS (1.0); the normalised update has RMS 1
    assert torch.allclose(one_step("adafactor", 0.0), torch.full((4, 3), 0.99))
    assert type(make_optimizer("adafactor", [torch.nn.Parameter(torch.ones(2))], 1e-5, 0.0)).__name__ == "Adafactor"


# --- recipes and keys -------------------------------------------------------------------------


def recipe_text(train: str = "", models_: str = '["tiny-random-gpt2", "tiny-random-bert"]') -> str:
    return f"""
models = {models_}
[data]
name = "synthetic"
n_train = 64
n_test = 16
[train]
{train}
"""


def plan_of(text: str):
    return build_plan(parse_recipe(tomllib.loads(text), Path("exp.toml"), text))


def test_a_bad_optimizer_is_a_recipe_error_naming_the_file_and_key():
    with pytest.raises(InputError) as err:
        plan_of(recipe_text('optimizer = "AdamW"'))
    message = str(err.value)
    assert "exp.toml" in message and "train.optimizer" in message and "did you mean 'adamw'" in message
    with pytest.raises(InputError, match=r"models\[0\]\.optimizer: expected one of 'adam', 'adamw', 'adafactor'"):
        plan_of(recipe_text(models_='[{ name = "tiny-random-gpt2", optimizer = "sgd" }, "tiny-random-bert"]'))
    with pytest.raises(InputError, match=r"train\.optim: unknown key \(did you mean 'optimizer'\?\)"):
        plan_of(recipe_text('optim = "adam"'))


def test_the_default_optimizer_keeps_job_keys_and_others_change_them():
    keys = {
        value: [j.key for j in plan_of(recipe_text(value)).jobs]
        for value in ("", 'optimizer = "adam"', 'optimizer = "adamw"', 'optimizer = "adafactor"')
    }
    assert keys[""] == keys['optimizer = "adam"']
    assert not set(keys[""]) & set(keys['optimizer = "adamw"'])
    assert not set(keys['optimizer = "adamw"']) & set(keys['optimizer = "adafactor"'])
    assert all(j.spec["train"]["optimizer"] == "adam" for j in plan_of(recipe_text()).jobs)


def test_qwen_72b_defaults_to_adafactor_as_the_reference_and_a_recipe_may_override(monkeypatch):
    from w2s_core.spec import registry

    models_ = '["gpt2", "Qwen/Qwen-72B"]'
    jobs = plan_of(recipe_text(models_=models_)).jobs
    assert {j.model: j.spec["train"]["optimizer"] for j in jobs if j.kind == "gt"} == {
        "gpt2": "adam",
        "Qwen/Qwen-72B": "adafactor",
    }
    overridden = plan_of(recipe_text('optimizer = "adam"', models_=models_)).jobs
    assert all(j.spec["train"]["optimizer"] == "adam" for j in overridden)
    # the registry default reaches only its own model: without it, gpt2's jobs keep their keys
    entry = {k: v for k, v in registry.MODEL_DEFAULTS["Qwen/Qwen-72B"].items() if k != "optimizer"}
    monkeypatch.setitem(registry.MODEL_DEFAULTS, "Qwen/Qwen-72B", entry)
    plain = plan_of(recipe_text(models_=models_)).jobs
    assert [j.key for j in plain if j.model == "gpt2"] == [j.key for j in jobs if j.model == "gpt2"]
    assert [j.key for j in plain if j.model != "gpt2"] != [j.key for j in jobs if j.model != "gpt2"]
