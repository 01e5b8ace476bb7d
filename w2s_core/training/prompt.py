"""Prompt jobs (`"stage": "prompt"`): zero- and k-shot classification by a causal LM, nothing trained.

This is the paper's Fig. 9a setting: the strong model is prompted zero-shot or with 5 demonstrations
and compared with finetuning, to measure how salient the task is to it. The paper gives the number
of shots but neither the template nor how demonstrations were drawn or scored, and there is no
reference code for it; what we do:

- The prompt of a query is the dataset's template (`w2s_core.data.prompt_format`: the recipe's
  `[data] template`/`label_words`, else the registered dataset's) filled with its text. With k
  shots, k demonstrations from half A, each `render(template, text) + label_word`, come first,
  joined (and followed) by a blank line.
- Demonstrations are drawn once per job with the run seed and shared by every query: a fixed
  k-shot prompt, so every example is scored in the same context (GPT-3's evaluations drew new ones
  per query instead). They are balanced across labels, k // K per class and the remainder one each
  from the lowest classes, then shuffled so no class always comes first.
- The prediction is P(class) = softmax over the classes' label words of log p(word | prompt),
  the word's tokens summed (`w2s_core.training.choice.ChoiceLM`; a single-token word is exactly
  the next-token log-probability). Restricting to the label words is the standard way to read a
  classifier off an LM; no calibration is applied.
- A prompt longer than max_length is cut from the left (`choice.encode_choices`), so the query
  survives and the earliest demonstrations go; result.json counts such prompts (`n_cut_prompts`).

The data path is that of trained jobs (`make_splits`, then `lengths.drop_long_inputs`, and
`lengths.indexed` on the predictions), so the prompted model's test pool and its predictions of
half B line up with every other job's: a transfer can learn from its labels of B.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from w2s_core.analysis import stats as metrics
from w2s_core.data import PromptFormat, Split, make_splits, prompt_format, render
from w2s_core.errors import InputError, W2SError
from w2s_core.jobdir import Event, EventWriter, JobDir, Result
from w2s_core.training.choice import ChoiceLM, collate_choices, encode_choices, load_causal_lm, require_causal
from w2s_core.training.lengths import drop_long_inputs, indexed
from w2s_core.training.loop import environment
from w2s_core.training.models import load_tokenizer, pick_dtype
from w2s_core.training.precision import check_predictions

DEMO_SEPARATOR = "\n\n"


def run(job_dir: Path) -> None:
    """Score the test set and the predict split of the prompt job in `job_dir`; write its outputs there."""
    folder = JobDir(job_dir)
    job = folder.read_spec()
    t0 = time.time()
    acc = Accelerator()
    set_seed(job["seed"])
    fmt = prompt_format(job["data"])  # an InputError for pairwise and chess data: no label words
    require_causal(job["model"], "prompting")
    splits, dropped = drop_long_inputs(job, make_splits(job["data"], job["seed"]))
    words = list(fmt.label_words)
    shots = int(job["prompt"]["shots"])
    demo_split = job.get("train_split") or "A"
    prefix = demo_prefix(fmt, splits[demo_split], shots, len(words), job["seed"], demo_split)

    spec = job["model"]
    dtype = pick_dtype(job["train"].get("dtype", "auto"), acc.device)
    module = ChoiceLM(load_causal_lm(spec, dtype, device=acc.device), spec)
    module.to(acc.device).eval()
    tok = load_tokenizer(spec)
    names = ["test"] + ([job["predict_split"]] if job.get("predict_split") else [])
    dists, cut = {}, 0
    for name in names:
        split = splits[name]
        check_labels(split.labels, len(words), name)
        prompts = [prefix + render(fmt, text) for text in split.texts]
        dists[name], n_cut = score(acc, module, tok, prompts, words, job["train"], name)
        cut += n_cut

    check_predictions(dists, job["train"])  # float16 weights can overflow: fail rather than record NaN
    if acc.is_main_process:
        preds = {name: prediction(dists[name], splits[name].labels) for name in names}
        result = summarize(dists["test"], splits["test"].labels, shots, cut, time.time() - t0)
        events = EventWriter(folder.events)
        events.emit(
            {Event.STEP: 0, Event.KIND: Event.FINAL, **{k: result[k] for k in (Event.TEST_ACC, Event.TEST_AUROC)}}
        )
        events.close()
        folder.write_outputs(environment(acc), indexed(preds, splits), {**result, **dropped})


# --- the prompt -----------------------------------------------------------------------------


def draw_demos(labels: list[int], shots: int, n_classes: int, seed: int, split: str = "A") -> list[int]:
    """Positions in `labels` of `shots` demonstrations: balanced (k // K per class, the remainder from
    the lowest classes), drawn with `seed`, shuffled; the same for every call with the same arguments."""
    if shots > len(labels):
        raise W2SError(
            f"[[prompt]] shots = {shots} asks for more demonstrations than half {split} holds "
            f"({len(labels)} examples). Lower shots or raise [data] n_train."
        )
    rng = random.Random(f"w2s-prompt-demos/{seed}")  # str seeds hash with sha512: the same in every process
    picked: list[int] = []
    for c in range(n_classes):
        quota = shots // n_classes + (1 if c < shots % n_classes else 0)
        pool = [i for i, y in enumerate(labels) if y == c]
        if len(pool) < quota:
            raise W2SError(
                f"[[prompt]] shots = {shots} needs {quota} demonstrations of class {c} (balanced across "
                f"{n_classes} classes), but half {split} has only {len(pool)}. Lower shots or raise [data] n_train."
            )
        picked += rng.sample(pool, quota)
    rng.shuffle(picked)
    return picked


def demo_prefix(fmt: PromptFormat, split: Split, shots: int, n_classes: int, seed: int, name: str = "A") -> str:
    """The demonstrations every query of the job starts with ("" at zero shots)."""
    demos = draw_demos(list(split.labels), shots, n_classes, seed, name)
    return "".join(render(fmt, split.texts[i]) + fmt.label_words[split.labels[i]] + DEMO_SEPARATOR for i in demos)


def check_labels(labels: list[int], n_words: int, split: str) -> None:
    top = max(labels, default=0)
    if top >= n_words:
        raise InputError(
            f"split {split} has label {top}, but [data] label_words has only {n_words} words (one per "
            "class, in label order). Give one label word per class."
        )


# --- scoring and outputs --------------------------------------------------------------------


@torch.no_grad()
def score(acc: Accelerator, module: ChoiceLM, tok, prompts: list[str], words: list[str], train: dict, name: str):
    """([N, K] class probabilities, how many prompts were cut), in order, gathered across processes."""
    cut: list[int] = []
    items = encode_choices(tok, prompts, [words] * len(prompts), train["max_length"], f"split {name}", cut)
    loader = acc.prepare(torch.utils.data.DataLoader(torch.arange(len(items)), batch_size=train["minibatch_size"]))
    rows = []
    for idx in loader:
        args = [t.to(acc.device) for t in collate_choices([items[i] for i in idx.tolist()], tok.pad_token_id)]
        rows.append(acc.gather_for_metrics(torch.softmax(module(*args).float(), dim=-1)))
    return (torch.cat(rows).cpu() if rows else torch.empty(0, len(words))), len(cut)


def prediction(dists: torch.Tensor, labels: list[int]) -> dict:
    """predictions.json's entry: P(class 1) for two classes; beyond, each full distribution and its top probability."""
    if dists.shape[1] == 2:
        return {"probs": dists[:, 1].tolist(), "labels": list(labels)}
    return {"probs": dists.max(dim=1).values.tolist(), "labels": list(labels), "dists": dists.tolist()}


def summarize(dists: torch.Tensor, labels: list[int], shots: int, cut: int, seconds: float) -> dict:
    """result.json: the test figures (as final, selected and oracle alike: there is one "checkpoint")."""
    scores = dists[:, 1].tolist() if dists.shape[1] == 2 else dists.tolist()
    acc, auroc = metrics.accuracy(scores, labels), metrics.auroc(scores, labels)
    return {
        Result.TEST_ACC: acc,
        Result.TEST_AUROC: auroc,
        Result.N_TEST: len(labels),
        Result.CHANCE_ACC: 1 / dists.shape[1],
        Result.SHOTS: shots,
        Result.N_CUT_PROMPTS: cut,
        Result.STEPS: 0,
        Result.SELECTED_STEP: 0,
        Result.FINAL_TEST_ACC: acc,
        Result.FINAL_TEST_AUROC: auroc,
        Result.ORACLE_TEST_ACC: acc,
        Result.ORACLE_STEP: 0,
        Result.TRAIN_SECONDS: seconds,
    }
