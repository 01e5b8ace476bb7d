"""Model loading and pooling (training.models), built-in tiny models (training.tiny), probe-feature caching
(training.features) and the defaults registry."""

import json
import shutil

import huggingface_hub.constants
import pytest
import torch
from transformers import AutoModel, AutoTokenizer, BertConfig, GPT2Config, LlamaConfig

from w2s_core.data import SYNTHETIC_VOCAB
from w2s_core.errors import InputError, W2SError
from w2s_core.spec.models import model_fingerprint
from w2s_core.spec.registry import GENERIC_DEFAULTS, MODEL_DEFAULTS, model_defaults
from w2s_core.training import features, models, tiny

TEXTS = ["the movie was great", "not good", "a very dull and boring film with a weak plot", "fun", ""]


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory):
    """One w2s cache for the module, so each tiny model is generated once."""
    with pytest.MonkeyPatch.context() as mp:
        root = tmp_path_factory.mktemp("w2s-cache")
        mp.setenv("W2S_CACHE", str(root))
        yield root


def spec(path: str, **overrides) -> dict:
    return {**model_defaults(path), **overrides}


def batch(tok, texts=TEXTS):
    return models.collate(models.encode(tok, texts, 64), tok.pad_token_id)


@pytest.mark.parametrize(
    "name, first, last", [("tiny-random-gpt2", "[BOS]", "great"), ("tiny-random-bert", "[CLS]", "[SEP]")]
)
def test_tiny_model_is_generated_once_and_loads_like_any_model(name, first, last, monkeypatch):
    path = tiny.ensure_tiny(name, None)
    assert AutoModel.from_pretrained(path).config.hidden_size == 32
    tok = AutoTokenizer.from_pretrained(path)
    ids = tok("The MOVIE   was great")["input_ids"]
    words = tok.convert_ids_to_tokens(ids)
    assert words[0] == first and words[-1] == last and "movie" in words
    assert tok.unk_token_id not in ids and tok("zzzz")["input_ids"].count(tok.unk_token_id) == 1
    assert set(SYNTHETIC_VOCAB) <= set(tok.get_vocab())

    monkeypatch.setattr(tiny, "_write_tiny", lambda *a: pytest.fail("regenerated an existing model"))
    assert tiny.ensure_tiny(name, {"seed": 0}) == path  # explicit defaults: same model, same dir
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp dirs left behind


def test_tiny_init_depends_only_on_the_seed(tmp_path, monkeypatch):
    default = AutoModel.from_pretrained(tiny.ensure_tiny("tiny-random-gpt2", None)).state_dict()
    monkeypatch.setenv("W2S_CACHE", str(tmp_path))
    torch.manual_seed(1234)  # the caller's RNG state must not matter
    again = AutoModel.from_pretrained(tiny.ensure_tiny("tiny-random-gpt2", None)).state_dict()
    other_dir = tiny.ensure_tiny("tiny-random-gpt2", {"seed": 1})
    other = AutoModel.from_pretrained(other_dir).state_dict()
    assert all(torch.equal(default[k], again[k]) for k in default)
    assert not torch.equal(default["wte.weight"], other["wte.weight"])


def test_bad_tiny_settings_are_input_errors():
    with pytest.raises(InputError, match="num_heads"):
        tiny.ensure_tiny("tiny-random-bert", {"hidden_size": 30, "num_heads": 4})
    with pytest.raises(InputError, match="layers"):
        tiny.ensure_tiny("tiny-random-bert", {"layers": 3})


@pytest.mark.parametrize("name", ["tiny-random-gpt2", "tiny-random-bert"])
def test_initial_logits_are_zero_and_dropout_is_off(name):
    model, tok = models.load_classifier(spec(name), dtype=torch.float32, lora=None, grad_checkpointing=False)
    ids, mask = batch(tok)
    model.train()  # dropout would make two passes differ
    logits = model(ids, mask)
    assert logits.dtype == torch.float32 and logits.shape == (len(TEXTS), 2)
    assert torch.count_nonzero(logits) == 0
    assert torch.equal(model.features(ids, mask), model.features(ids, mask))
    assert all(p.requires_grad for p in model.parameters())


def test_last_token_pooling_uses_the_last_non_pad_token():
    model, tok = models.load_classifier(
        spec("tiny-random-gpt2"), dtype=torch.float32, lora=None, grad_checkpointing=False
    )
    model.eval()
    ids, mask = batch(tok)
    assert mask.sum(1).min() < ids.shape[1]  # the batch really has padding
    pooled = model.features(ids, mask)
    for row, seq in enumerate(models.encode(tok, TEXTS, 64)):
        alone = model.backbone(input_ids=torch.tensor([seq]))[0][0, -1]
        torch.testing.assert_close(pooled[row], alone, atol=1e-5, rtol=1e-5)


def test_mean_pooling_is_the_mean_over_real_tokens():
    model, tok = models.load_classifier(
        spec("tiny-random-bert"), dtype=torch.float32, lora=None, grad_checkpointing=False
    )
    model.eval()
    ids, mask = batch(tok)
    pooled = model.features(ids, mask)
    for row, seq in enumerate(models.encode(tok, TEXTS, 64)):
        alone = model.backbone(input_ids=torch.tensor([seq]))[0][0].mean(dim=0)
        torch.testing.assert_close(pooled[row], alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["tiny-random-gpt2", "tiny-random-bert"])
def test_lora_trains_only_adapters_and_head_with_checkpointing(name):
    model, tok = models.load_classifier(spec(name), dtype=torch.float32, lora={"r": 4}, grad_checkpointing=True)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert trainable and frozen and "head.weight" in trainable
    assert all("lora_" in n or n == "head.weight" for n in trainable)
    assert not any("lora_" in n for n in frozen)
    assert model.backbone.get_base_model().is_activation_checkpointing
    ids, mask = batch(tok)
    model.train()
    model(ids, mask)[:, 1].sum().backward()
    assert model.head.weight.grad.abs().sum() > 0
    # No idle trainable parameters (e.g. an unused BERT pooler): they would break DDP.
    assert [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None] == []


def test_full_finetune_gives_every_parameter_a_gradient():
    model, tok = models.load_classifier(
        spec("tiny-random-bert"), dtype=torch.float32, lora=None, grad_checkpointing=False
    )
    assert not model.backbone.is_activation_checkpointing
    torch.nn.init.normal_(model.head.weight)  # a zero head passes no gradient into the backbone
    model(*batch(tok))[:, 1].sum().backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []


def test_gpt2_style_tokenizer_without_pad_pads_with_eos(tmp_path):
    src = tiny.ensure_tiny("tiny-random-gpt2", None)
    shutil.copytree(src, tmp_path / "m")
    config_file = tmp_path / "m" / "tokenizer_config.json"
    config_file.write_text(
        json.dumps({k: v for k, v in json.loads(config_file.read_text()).items() if k != "pad_token"})
    )
    tok = models.load_tokenizer(spec(str(tmp_path / "m")))
    assert tok.pad_token == tok.eos_token == "[EOS]" and tok.padding_side == "right"


def test_cached_features_are_reused_without_loading_the_model(monkeypatch):
    s = spec("tiny-random-bert")
    first = features.cached_features(s, TEXTS, max_length=64, batch_size=2, device="cpu")
    # Sorting by length must not shuffle rows: compare with one text at a time.
    for row, text in enumerate(TEXTS):
        alone = features.extract_features(s, [text], max_length=64, batch_size=1, device="cpu")
        torch.testing.assert_close(first[row], alone[0], atol=1e-5, rtol=1e-5)

    def no_loading(*args, **kwargs):
        raise RuntimeError("model loaded")

    monkeypatch.setattr(features, "load_backbone", no_loading)
    second = features.cached_features(s, TEXTS, max_length=64, batch_size=7, device="cpu")
    assert second.dtype == torch.float32 and torch.equal(first, second)
    with pytest.raises(RuntimeError, match="model loaded"):  # other texts are a different cache entry
        features.cached_features(s, TEXTS[::-1], max_length=64, batch_size=2, device="cpu")


def test_missing_local_directories_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="mine.*does not exist"):
        models.load_classifier(
            spec(str(tmp_path / "nope"), name="mine"), dtype=torch.float32, lora=None, grad_checkpointing=False
        )
    with pytest.raises(InputError, match="mine.*config.json"):
        models.load_tokenizer(spec(str(tmp_path), name="mine"))


def test_unreachable_hub_model_is_a_w2s_error_with_hints(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import time
    with pytest.raises(W2SError) as err:
        models.load_classifier(
            spec("no-such-org/no-such-model"), dtype=torch.float32, lora=None, grad_checkpointing=False
        )
    message = str(err.value)
    assert "no-such-org/no-such-model" in message and "could not load" in message and "local directory" in message
    assert not isinstance(err.value, InputError)


def test_arch_detection():
    assert models.detect_arch(GPT2Config()) == "causal"
    assert models.detect_arch(LlamaConfig()) == "causal"
    assert models.detect_arch(BertConfig()) == "encoder"  # bert also has a causal-LM head class
    assert models.detect_arch(BertConfig(architectures=["BertForMaskedLM"])) == "encoder"
    assert models.detect_arch(BertConfig(is_decoder=True)) == "causal"
    assert models.model_arch(spec("tiny-random-gpt2", arch=None)) == "causal"
    assert models.model_arch(spec("tiny-random-bert", arch=None)) == "encoder"


def test_fingerprints_follow_what_would_be_loaded(tmp_path):
    hub = model_fingerprint(spec("gpt2"))
    assert hub != model_fingerprint(spec("gpt2", revision="abc"))
    assert "gpt2" in hub
    tiny = model_fingerprint(spec("tiny-random-gpt2"))
    assert tiny == model_fingerprint(spec("tiny-random-gpt2"))
    assert tiny != model_fingerprint(spec("tiny-random-gpt2", tiny={"seed": 3}))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    (tmp_path / "model.safetensors").write_bytes(b"x" * 10)
    local = spec(str(tmp_path))
    before = model_fingerprint(local)
    (tmp_path / "model.safetensors").write_bytes(b"x" * 11)
    after_weights = model_fingerprint(local)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 3}))
    assert len({before, after_weights, model_fingerprint(local)}) == 3


def test_encode_truncates_and_collate_right_pads():
    tok = models.load_tokenizer(spec("tiny-random-gpt2"))
    ids = models.encode(tok, TEXTS, 4)
    assert [len(x) for x in ids] == [min(4, 1 + len(t.split())) for t in TEXTS]
    input_ids, mask = models.collate(ids, pad_id=-7)
    assert input_ids.dtype == mask.dtype == torch.long and input_ids.shape == (len(TEXTS), 4)
    for row, seq in enumerate(ids):
        assert input_ids[row].tolist() == seq + [-7] * (4 - len(seq))
        assert mask[row].tolist() == [1] * len(seq) + [0] * (4 - len(seq))
    assert len(models.encode(tok, ["good " * 1000], 10_000)[0]) == tok.model_max_length == 512


def test_pick_dtype():
    assert models.pick_dtype("auto", torch.device("cpu")) == torch.float32
    assert models.pick_dtype("bfloat16", "cpu") == torch.bfloat16
    assert models.pick_dtype("float16", "cpu") == torch.float16
    with pytest.raises(InputError, match="float64"):
        models.pick_dtype("float64", "cpu")


def test_model_defaults_merge_and_are_copies():
    gpt2 = model_defaults("gpt2")
    assert gpt2["lr"] == MODEL_DEFAULTS["gpt2"]["lr"] and gpt2["epochs"] == GENERIC_DEFAULTS["epochs"]
    assert gpt2["path"] == gpt2["name"] == "gpt2" and gpt2["trust_remote_code"] is False
    assert model_defaults("Qwen/Qwen-7B")["trust_remote_code"] is False
    assert model_defaults("gpt2-xl")["grad_checkpointing"] and not gpt2["grad_checkpointing"]
    unknown = model_defaults("/some/local/dir")
    assert unknown == {**GENERIC_DEFAULTS, "name": "/some/local/dir", "path": "/some/local/dir"}
    tiny = model_defaults("tiny-random-bert")
    tiny["tiny"]["seed"] = 99
    tiny["lr"] = 1.0
    gpt2["epochs"] = 100
    assert model_defaults("tiny-random-bert")["tiny"]["seed"] == 0
    assert MODEL_DEFAULTS["tiny-random-bert"]["lr"] != 1.0 and GENERIC_DEFAULTS["epochs"] != 100
    for name in MODEL_DEFAULTS:
        d = model_defaults(name)
        assert d["batch_size"] % d["minibatch_size"] == 0, name


def test_weights_load_straight_onto_a_gpu_except_under_fsdp(monkeypatch):
    """On a GPU the backbone is loaded with device_map onto the job's device (no full host copy first);
    on a CPU, and under FSDP (accelerate shards the host copy), as before. The CUDA load itself needs a
    GPU: here the call's arguments are checked, and the model still loads through the real path."""
    seen = []
    real = AutoModel.from_pretrained.__func__

    def recording(cls, path, **kwargs):
        seen.append(kwargs.pop("device_map", None))
        return real(cls, path, **kwargs)

    monkeypatch.setattr(AutoModel, "from_pretrained", classmethod(recording))
    monkeypatch.delenv("ACCELERATE_USE_FSDP", raising=False)
    models.load_backbone(spec("tiny-random-bert"), torch.float32, device=torch.device("cuda:1"))
    models.load_backbone(spec("tiny-random-bert"), torch.float32, device="cpu")
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    models.load_backbone(spec("tiny-random-bert"), torch.float32, device="cuda:0")
    assert seen == [{"": torch.device("cuda:1")}, None, None]
