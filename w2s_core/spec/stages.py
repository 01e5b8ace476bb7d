"""The recipe's [[prompt]] and [[generative]] tables: validated into the stages the planner expands.

A prompting job (Burns et al. 2023, Fig. 9a) trains nothing: a causal LM scores each example by the
log-probabilities of per-class label words after a template, zero-shot or with k demonstrations
from half A. It is named "<model>:<k>-shot", a name `pairs` may use as a weak supervisor.
A generative stage finetunes a causal LM with next-token loss on the task's unlabelled inputs (or a
local text file) before every GT, transfer and bootstrap job of that model, students and ceiling
alike (the paper's reward-modelling setting). Both need a causal LM: a model whose registry entry
or `arch` says encoder is a recipe error here; a hub id of unknown architecture is left to the job,
which fails with a clear message. Neither reference codebase ships these stages; the paper's text
is what we follow.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from w2s_core.spec.checks import Problems, is_int
from w2s_core.spec.schema import (
    GENERATIVE_DEFAULTS,
    GENERATIVE_KEYS,
    PROMPT_DEFAULTS,
    PROMPT_KEYS,
    GenerativeStage,
    ModelEntry,
    PromptStage,
)


def prompt_name(model: str, shots: int) -> str:
    """A prompting job's name: the weak side of a pair may use it."""
    return f"{model}:{shots}-shot"


def is_encoder(model: ModelEntry) -> bool:
    return model.get("arch") == "encoder"


def _tables(value: Any, key: str, err: Problems) -> list[dict]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        err.add(key, f"expected [[{key}]] tables (each with `models = [...]`), got {value!r}")
        return []
    return value


def _causal_models(entry: dict, where: str, models: dict[str, ModelEntry], what: str, err: Problems) -> list[str]:
    """The table's `models`, each a model of the recipe that is not an encoder."""
    names = entry.get("models")
    if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        err.add(f"{where}models", f"expected a non-empty list of the recipe's model names, got {names!r}")
        return []
    found = []
    for name in names:
        if not err.known(name, list(models), f"{where}models"):
            continue
        if is_encoder(models[name]):
            err.add(
                f"{where}models",
                f"{what} needs a causal (decoder) language model, but {name!r} ({models[name]['path']}) is an "
                "encoder (its registry entry or `arch` says so); use a causal model such as gpt2",
            )
        else:
            found.append(name)
    return found


def prompts(value: Any, models: dict[str, ModelEntry], data: dict, err: Problems) -> list[PromptStage]:
    """[[prompt]] tables: causal models, shots (each at most half A's size), and the row's weak model."""
    out: list[PromptStage] = []
    half = data["n_train"] // 2 if is_int(data.get("n_train")) else None
    for i, entry in enumerate(_tables(value, "prompt", err)):
        where = f"prompt[{i}]."
        err.check_table(where, {k: v for k, v in entry.items() if k != "models"}, PROMPT_KEYS)
        names = _causal_models(entry, where, models, "prompting", err)
        shots = entry.get("shots", PROMPT_DEFAULTS["shots"])
        if PROMPT_KEYS["shots"](shots) is not None:
            shots = []  # check_table reported it
        for k in shots:
            if half is not None and k > half:
                err.add(
                    f"{where}shots",
                    f"{k} demonstrations are drawn from half A, which holds only {half} examples "
                    f"(data.n_train / 2); use fewer shots or a larger n_train",
                )
        if len(set(shots)) != len(shots):
            err.add(f"{where}shots", f"expected distinct numbers of shots, got {shots!r}")
        weak = entry.get("weak", next(iter(models), None))
        if isinstance(weak, str):
            err.known(weak, list(models), f"{where}weak")
        if names and shots and weak in models:
            out.append({"models": names, "shots": list(dict.fromkeys(shots)), "weak": weak})
    return out


def generative(value: Any, models: dict[str, ModelEntry], path: Path, err: Problems) -> dict[str, GenerativeStage]:
    """[[generative]] tables: one stage per causal model, with its text resolved and fingerprinted."""
    out: dict[str, GenerativeStage] = {}
    for i, entry in enumerate(_tables(value, "generative", err)):
        where = f"generative[{i}]."
        err.check_table(where, {k: v for k, v in entry.items() if k != "models"}, GENERATIVE_KEYS)
        settings = {**GENERATIVE_DEFAULTS, **entry}
        text = _text(settings["text"], where, path, err)
        for name in _causal_models(entry, where, models, "generative finetuning", err):
            if name in out:
                err.add(f"{where}models", f"{name!r} already has a [[generative]] stage; give each model one")
                continue
            if text is not None:
                lr = settings.get("lr", models[name].get("lr"))
                out[name] = {"model": name, "text": text, "epochs": settings["epochs"], "lr": lr}
    return out


def _text(text: Any, where: str, path: Path, err: Problems) -> str | dict | None:
    """ "task", or {"path": absolute, "sha256": of its bytes} (so an edited file makes new jobs)."""
    if GENERATIVE_KEYS["text"](text) is not None:
        return None  # check_table reported it
    if text == "task":
        return "task"
    file = (path.parent / Path(text["path"]).expanduser()).resolve()  # relative to the recipe
    if not file.is_file():
        err.add(f"{where}text.path", f"text file {text['path']!r} not found (looked for {file})")
        return None
    return {"path": str(file), "sha256": hashlib.sha256(file.read_bytes()).hexdigest()}
