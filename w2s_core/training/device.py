"""A job placed on a GPU must run on one: fail at once, saying why, rather than train on the CPU.

The supervisor tells each job the device its slot names (`W2S_DEVICE`: "cuda:0", "cuda:1,3", "cpu";
w2s_core.supervision.slots). accelerate quietly falls back to the CPU when torch finds no CUDA device,
so without this check a job placed on "cuda:0" by a machine whose nvidia-smi lists GPUs would train on
the CPU under a CPU-only torch (or a broken driver) for hours while the store says cuda:0. A launch
without W2S_DEVICE (a job run by hand) is not checked.
"""

from __future__ import annotations

import os

import torch

from w2s_core.errors import W2SError

ENV = "W2S_DEVICE"


def check_device(environ: dict | None = None) -> None:
    """Raise W2SError when the job's slot names CUDA devices this process cannot use."""
    environ = os.environ if environ is None else environ
    wanted = environ.get(ENV, "")
    if not wanted.startswith("cuda"):
        return
    ids = [g for g in wanted[len("cuda:") :].split(",") if g]
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if not torch.cuda.is_available():
        build = (
            f"this Python's torch {torch.__version__} is a CPU-only build (torch.version.cuda is None): install "
            "a CUDA build of torch"
            if torch.version.cuda is None
            else f"torch {torch.__version__} (CUDA {torch.version.cuda}) finds no usable device: is the NVIDIA "
            f"driver loaded, and does CUDA_VISIBLE_DEVICES={visible!r} name a device this process may use?"
        )
        raise W2SError(f"the supervisor placed this job on {wanted}, but {build}. It stops rather than run on the CPU.")
    found = torch.cuda.device_count()
    if found < len(ids):
        raise W2SError(
            f"the supervisor placed this job on {wanted} (CUDA_VISIBLE_DEVICES={visible!r}), but torch sees "
            f"{found} CUDA device(s): a MIG instance shows one per process, and an id may name no device here"
        )
