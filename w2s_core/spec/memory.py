"""The memory plan: each job's estimated peak GPU memory per process, and the strategy it trains with.

Estimated from the job's spec before anything starts (no torch: the model's figures come from
shapes.py: a local or cached config.json, else the registry), for what the trainer does with it on a
GPU (w2s_core.training.setup.load_finetune):

    strategy        when                               bytes per parameter the model loads
    full            dtype "auto", "float32" or          weights 4 + gradients 4 + Adam 8 (= 16), and with
                    "float16" (float32 master weights,  autocast ("auto": bf16, "float16": fp16 with loss
                    training/precision.py)              scaling) copies 2 of the layers' weights
    full-bf16       dtype "bfloat16"                    weights 2 + gradients 2 + Adam 4, or Adafactor ~0
                                                        (factored) + float32 copies of its largest tensor
    lora            `lora` set                          frozen base 2 (bf16 on a GPU); adapters (rank r on
                                                        every linear layer) float32 with Adam: 16 each
    probe           mode "probe", or a prompting job    weights 2, frozen forward only

Activations, per process at its `minibatch_size` (both replies of a pairwise example) and `max_length`
tokens: per layer and token, bytes of the compute dtype (2 under bf16) times 5h + 2·kv + i·(4 gated,
else 2) (inputs of the norms and projections, q/k/v and attention output under fused SDPA, the MLP's
branches) plus the float32 residual stream 2h; that count times what the layers really keep for the
backward (`SAVED`, measured), every layer's with no checkpointing, else each layer's input and one
layer recomputed; plus one layer's working set for the backward, and the vocabulary logits of a job
that has an LM head (a generative stage, chess, prompting).

`SAVED` comes from `benchmarks/memory_plan.py` on an H200 (torch 2.11, transformers 5.17, random-init
configs, 3 steps at max_length 1024/512): the peak `max_memory_allocated` less weights, optimizer
state and working copies, per layer and token, over the count above. Eager modules keep more than
the count: GPT-2's tanh GELU is written as eight elementwise ops, four of whose results autograd
keeps; under autocast the LayerNorms run and return float32, and each projection keeps its own
16-bit copy of its input; LoRA keeps its adapters' inputs. Measured: gpt2-medium and gpt2-large
full (fp32 weights, bf16 autocast) 2.42 and 2.47, gpt2-large LoRA 2.14, bf16 weights 1.73,
Qwen2-0.5B full 1.56 (SiLU-gated MLP, RMSNorm). Rounded up per MLP kind and strategy; a gated
model's LoRA and bf16 runs were not measured and take its full-finetune figure. With the factors,
the six measured cases' estimates are 4-23% above their peaks (the estimate also counts all
gradients, which at the peak, the start of the backward, do not yet exist); without them the
peaks were 7-96% above the estimates but for the checkpointed case (10% below).
With several processes
(`[launch] gpus_per_job`), DDP keeps a full replica and gradient buckets as large as the gradients on
each GPU; FSDP shards weights, gradients and optimizer state over the processes and gathers about two
layers at a time. Outside the estimate: ~1 GiB of CUDA context per process (CONTEXT_GIB), and
fragmentation: a job is planned to fit when estimate + context <= USABLE x the GPU's memory.

Approximations, on purpose: no eager-attention scores, no allocator rounding, the per-token factors
above rather than per-kernel workspaces. `estimate(...).parts` keeps each term, for the dry run and
for comparing with `torch.cuda.max_memory_allocated`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from w2s_core.spec.shapes import Shape, model_shape

GIB = float(2**30)
MIB = 2.0**20
CONTEXT_GIB = 1.0  # CUDA context, cuBLAS/cuDNN workspaces: per process, outside torch's allocator
USABLE = 0.95  # of a GPU's memory a job is planned to use (the allocator's fragmentation)
LORA_RANK = 8  # peft's default r, what `lora = true` trains with (w2s_core.training.models)
PROBE_BATCH = 32  # probe features are extracted in passes of at least 32 inputs (training.setup)
HALF = ("auto", "bfloat16", "float16")  # dtypes that compute in 16 bits on a GPU
OPTIMIZER_NAMES = {"adam": "Adam", "adamw": "AdamW", "adafactor": "Adafactor"}
# what the layers keep for the backward over the per-token count (module docstring): (gated MLP, strategy)
SAVED = {(False, "full"): 2.5, (False, "lora"): 2.2, (False, "full-bf16"): 1.8}
SAVED_GATED = 1.6  # Qwen2's full finetune; its LoRA and bf16 runs unmeasured


def saved_factor(shape: Shape, strategy: str) -> float:
    """What `shape`'s layers keep for the backward per counted byte, under `strategy` (module docstring)."""
    return SAVED_GATED if shape.gated else SAVED.get((False, strategy), SAVED[(False, "full")])


STRATEGIES = {
    "full": "full finetune, float32 weights",
    "full-bf16": "full finetune, 16-bit weights",
    "lora": "LoRA adapters on a frozen base",
    "probe": "frozen forward only",
}


@dataclass(frozen=True)
class Estimate:
    """One job's plan on `gpus` processes: bytes per GPU by part, and what it trains how."""

    strategy: str  # a STRATEGIES key
    what: str  # the phrase the dry run prints
    gpus: int
    sharded: bool  # FSDP over the job's GPUs (else a replica on each)
    parts: dict[str, float] = field(default_factory=dict)  # bytes per GPU
    params: int = 0  # parameters the job loads
    trainable: int = 0
    source: str = ""  # where the model's figures come from

    @property
    def total(self) -> float:
        return sum(self.parts.values())

    @property
    def gib(self) -> float:
        return self.total / GIB

    def need_gib(self) -> float:
        """What a GPU must hold for it: the estimate and the CUDA context."""
        return self.gib + CONTEXT_GIB

    def fits(self, gpu_gib: float) -> bool:
        return self.need_gib() <= USABLE * gpu_gib

    def breakdown(self) -> str:
        """Each part with its size ("weights 26.0 GiB, gradients 26.0 GiB, ..."); parts under 1 MiB left out."""
        return ", ".join(f"{name} {size_text(value)}" for name, value in self.parts.items() if value >= MIB)


def size_text(nbytes: float) -> str:
    """A size for people: GiB with one decimal from 1 GiB, else MiB (a tiny test model is not "0.0 GiB")."""
    return f"{nbytes / GIB:.1f} GiB" if nbytes >= GIB else f"{nbytes / MIB:.0f} MiB"


def _linears(shape: Shape) -> list[tuple[int, int]]:
    """(in, out) of each linear layer of one block: q, k, v, o and the MLP's."""
    h, i, kv = shape.hidden, shape.intermediate, shape.kv_dim
    return [(h, h), (h, kv), (h, kv), (h, h)] + [(h, i)] * (2 if shape.gated else 1) + [(i, h)]


def _lora_params(shape: Shape, rank: int) -> int:
    """Adapter parameters of rank `rank` on every linear layer of every block (peft's "all-linear")."""
    return shape.layers * sum(rank * (a + b) for a, b in _linears(shape))


def _factored(shape: Shape) -> int:
    """Adafactor's second-moment elements: a row and a column vector per matrix (embeddings included)."""
    return shape.layers * sum(a + b for a, b in _linears(shape)) + shape.vocab + shape.hidden


def _activations(
    shape: Shape, tokens: int, compute: int, residual: int, train: dict, lm_head: bool, saved: float
) -> dict:
    """Activation bytes of one process for `tokens` tokens (module docstring); `train` says checkpointing,
    `saved` what a layer keeps per counted byte (`saved_factor`)."""
    h, kv, i = shape.hidden, shape.kv_dim, shape.intermediate
    layer = tokens * (compute * (5 * h + 2 * kv + i * (4 if shape.gated else 2)) + residual * 2 * h)
    if train.get("grad_checkpointing"):
        kept = shape.layers * tokens * residual * h + layer * saved  # each layer's input, one layer recomputed
    else:
        kept = shape.layers * layer * saved + tokens * residual * h
    logits = tokens * shape.vocab * (compute + 8) if lm_head else 0  # logits, float32 copy and gradient
    return {"activations": float(kept + layer + logits)}  # + the backward's working set of one layer


def _inference(shape: Shape, tokens: int, compute: int, lm_head: bool) -> dict:
    """A frozen forward: nothing is kept for a backward, one layer's working set at a time."""
    h, kv, i = shape.hidden, shape.kv_dim, shape.intermediate
    layer = tokens * compute * (7 * h + 2 * kv + i * (4 if shape.gated else 2))
    logits = tokens * shape.vocab * (compute + 4) if lm_head else 0
    return {"activations": float(layer + tokens * 4 * h + logits)}


def _strategy(train: dict, frozen: bool) -> str:
    if frozen:
        return "probe"
    if train.get("lora"):
        return "lora"
    return "full" if train.get("dtype", "auto") in ("auto", "float32", "float16") else "full-bf16"


def _model_state(shape: Shape, params: int, train: dict, strategy: str) -> tuple[dict, int, str]:
    """(bytes of weights, gradients, optimizer and working copies for one replica, trainable, phrase)."""
    dtype, optimizer = train.get("dtype", "auto"), train.get("optimizer", "adam")
    adam = optimizer in ("adam", "adamw")
    if strategy == "probe":
        return {"weights": 2.0 * params if dtype in HALF else 4.0 * params}, 0, STRATEGIES["probe"]
    if strategy == "lora":
        rank = train["lora"].get("r", LORA_RANK) if isinstance(train["lora"], dict) else LORA_RANK
        adapters = _lora_params(shape, rank)
        base = 2.0 if dtype in HALF else 4.0
        parts = {"weights": base * params + 4.0 * adapters, "gradients": 4.0 * adapters, "optimizer": 8.0 * adapters}
        return parts, adapters, f"LoRA r={rank} on a frozen {'bf16' if base == 2 else 'float32'} base, Adam"
    width = 4.0 if strategy == "full" else 2.0
    parts = {"weights": width * params, "gradients": width * params}
    if adam:
        parts["optimizer"] = 2 * width * params
    else:  # Adafactor: factored second moments, and float32 working copies of one tensor at a time
        parts["optimizer"] = width * _factored(shape)
        parts["working copies"] = (3 if width == 2 else 2) * 4.0 * shape.largest_tensor()
    if strategy == "full" and dtype in ("auto", "float16"):  # autocast caches a 16-bit copy of each weight it casts
        parts["working copies"] = 2.0 * (params - shape.embedding_params())
    autocast = {"auto": " (bf16 autocast)", "float16": " (fp16 autocast, loss scaling)"}.get(dtype, "")
    what = {"full": f"float32 weights{autocast}", "full-bf16": f"{dtype} weights"}
    return parts, params, f"full finetune, {what[strategy]}, {OPTIMIZER_NAMES.get(optimizer, optimizer)}"


def estimate(spec: dict, gpus: int = 1, sharded: bool = False) -> Estimate | None:
    """The job's plan per GPU on `gpus` processes (FSDP when `sharded`); None when its model's size is unknown."""
    shape = model_shape(spec["model"])
    if shape is None:
        return None
    train, stage = spec["train"], spec.get("stage")
    kind = spec.get("data", {}).get("kind", "classify")
    lm_head = stage in ("generative", "prompt") or kind == "chess"
    frozen = train.get("mode") == "probe" or stage == "prompt"
    params = shape.body_params() + (shape.lm_head_params() if lm_head else 0)
    strategy = _strategy(train, frozen)
    state, trainable, what = _model_state(shape, params, train, strategy)
    gpus = max(1, gpus)
    sharded = sharded and gpus > 1
    if sharded:  # FSDP: every state sharded; about two layers gathered in full at a time
        state = {k: v / gpus for k, v in state.items()}
        width = 4.0 if strategy == "full" else 2.0
        if strategy.startswith("full") and train.get("optimizer", "adam") == "adafactor":
            state["optimizer"] = width * params / gpus  # on flat 1-D shards Adafactor cannot factor
        state["gathered layers"] = 2 * shape.layer_params() * width * (1 if strategy in ("probe", "lora") else 2)
        what += f"; FSDP over {gpus} GPUs"
    elif gpus > 1 and strategy != "probe":
        state["DDP buckets"] = state.get("gradients", 0.0)
        what += f"; DDP, a replica on each of {gpus} GPUs"
    compute = 2 if train.get("dtype", "auto") in HALF else 4
    mini = train.get("minibatch_size", 1) * (2 if kind == "pairwise" else 1)
    if frozen:
        tokens = max(mini, PROBE_BATCH) * train.get("max_length", 512)
        acts = _inference(shape, tokens, compute, lm_head)
    else:
        residual = 4 if strategy == "full" else compute
        tokens = mini * train.get("max_length", 512)
        acts = _activations(shape, tokens, compute, residual, train, lm_head, saved_factor(shape, strategy))
        if train.get("grad_checkpointing"):
            what += ", gradient checkpointing"
    return Estimate(strategy, what, gpus, sharded, {**state, **acts}, params, trainable, shape.source)


def can_shard(spec: dict) -> bool:
    """Whether w2s's own FSDP config (FSDP1, flat parameters per layer) can shard the job: every parameter
    of a wrapped unit must share one dtype, so float32 weights throughout (dtype "auto" or "float32"
    full finetunes; LoRA only on a "float32" base). A bf16 model with its float32 head cannot."""
    train = spec["train"]
    if train.get("mode") == "probe" or spec.get("stage") == "prompt":
        return False
    dtype = train.get("dtype", "auto")
    return dtype == "float32" or (dtype == "auto" and not train.get("lora"))


def plan(spec: dict, gpus: int = 1, gpu_gib: float | None = None, fsdp: bool | str = "auto") -> Estimate | None:
    """The estimate the job will run with. On several GPUs: sharded when `fsdp` is True (the user's own
    accelerate config shards, or `[launch] fsdp = true`); with "auto", sharded by w2s's FSDP config when
    a replica would not fit `gpu_gib` and shards would (`can_shard`); else a replica per GPU (DDP)."""
    replica = estimate(spec, gpus)
    if gpus <= 1 or fsdp is False or replica is None or replica.strategy == "probe":
        return replica
    if fsdp is True:
        return estimate(spec, gpus, sharded=True)
    if gpu_gib is None or replica.fits(gpu_gib) or not can_shard(spec):
        return replica
    shards = estimate(spec, gpus, sharded=True)
    return shards if shards is not None and shards.fits(gpu_gib) else replica


VARIANTS = (
    ("lora = true", {"lora": True}),
    ('dtype = "bfloat16" with optimizer = "adafactor"', {"dtype": "bfloat16", "optimizer": "adafactor"}),
    ("grad_checkpointing = true", {"grad_checkpointing": True}),
    ("minibatch_size = 1", {"minibatch_size": 1}),
)


def options(spec: dict, gpus: int, gpu_gib: float, max_gpus: int = 8) -> list[str]:
    """Changes that would make the job fit GPUs of `gpu_gib`, each with its estimate per GPU: a train
    setting on the same GPUs, or w2s's FSDP over more of them (`max_gpus` at most)."""
    train = spec["train"]
    if train.get("mode") == "probe":
        return []
    found = []
    for words, change in VARIANTS:
        if all(train.get(k) == v for k, v in change.items()) or train.get("minibatch_size", 1) <= change.get(
            "minibatch_size", 0
        ):
            continue
        other = plan({**spec, "train": {**train, **change}}, gpus, gpu_gib)
        if other is not None and other.fits(gpu_gib):
            found.append(f"{words} ({other.gib:.1f} GiB per GPU)")
    uniform = spec if can_shard(spec) else {**spec, "train": {**train, "lora": True, "dtype": "float32"}}
    words = "" if uniform is spec else 'lora = true with dtype = "float32" and '
    for n in (2, 4, 8, 16, 32):
        if n > max(gpus, 1) and n <= max_gpus:
            shards = estimate(uniform, n, sharded=True)
            if shards is not None and shards.fits(gpu_gib):
                found.append(f"{words}[launch] gpus_per_job = {n}, sharded by FSDP ({shards.gib:.1f} GiB per GPU)")
                break
    return found
