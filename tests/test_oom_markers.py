"""Out-of-memory reports in a job's log read as "out of memory" (issue 14, item 5: the diagnosis part).

The snippets are the shapes these failures take in real logs (torch, cuBLAS, NCCL as launched by
torchrun/accelerate), each ending the way a job's log ends: the launcher's own complaint last.
"""

from __future__ import annotations

import pytest

from w2s_core.supervision import diagnosis

LAUNCHER = (
    "subprocess.CalledProcessError: Command '['python', '-m', 'w2s_core.training', 'JOB']' returned non-zero "
    "exit status 1."
)

OOM_LOGS = {
    "torch allocator": "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total "
    "capacity of 79.19 GiB of which 1.02 GiB is free.",
    "CUDA error": "RuntimeError: CUDA error: out of memory\nCUDA kernel errors might be asynchronously reported at "
    "some other API call, so the stacktrace below might be incorrect.\nFor debugging consider passing "
    "CUDA_LAUNCH_BLOCKING=1",
    "cuBLAS": '  File "torch/nn/modules/linear.py", line 125, in forward\n    return F.linear(input, self.weight, '
    "self.bias)\nRuntimeError: CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
    "NCCL, old": "host:3018451:3018451 [0] enqueue.cc:1085 NCCL WARN Cuda failure 'out of memory'\n"
    "torch.distributed.DistBackendError: NCCL error in: ProcessGroupNCCL.cpp:1970, unhandled cuda error "
    "(run with NCCL_DEBUG=INFO for details), NCCL version 2.18.1\nncclUnhandledCudaError: Call to CUDA "
    "function failed.",
    "NCCL, new": "host:2657296:2658232 [1] include/alloc.h:228 NCCL WARN Cuda failure 2 'out of memory'\n"
    "torch.distributed.DistBackendError: NCCL error in: ProcessGroupNCCL.cpp:3356, unhandled cuda error "
    "(run with NCCL_DEBUG=INFO for details), NCCL version 2.21.5\nncclUnhandledCudaError: Call to CUDA function "
    "failed.\nLast error:\nCuda failure 2 'out of memory'",
    "NCCL, host memory": "torch.distributed.DistBackendError: NCCL error in: ProcessGroupNCCL.cpp:1970, "
    "unhandled system error (run with NCCL_DEBUG=INFO for details), NCCL version 2.19.3\nncclSystemError: "
    "System call (e.g. socket, malloc) or external library call failed or device error.\nLast error:\n"
    "Cannot allocate memory",
}
NOT_OOM = {
    "diverged": "error: training diverged: the loss was nan at optimiser step 2, so the model's predictions "
    "would be garbage",
    "other CUDA error": "RuntimeError: CUDA error: device-side assert triggered",
    "NCCL timeout": "torch.distributed.DistBackendError: NCCL error in: ProcessGroupNCCL.cpp:1970, unhandled cuda "
    "error (run with NCCL_DEBUG=INFO for details)\nLast error:\nCuda failure 'invalid argument'",
    "memory words": "pin_memory=True; max_memory_allocated 12.3 GiB; memory plan ok",
}


@pytest.mark.parametrize("name", sorted(OOM_LOGS))
def test_recorded_out_of_memory_logs_are_diagnosed_as_such(tmp_path, name):
    path = tmp_path / "log.txt"
    path.write_text(f"step 12 loss 0.61\n{OOM_LOGS[name]}\n{LAUNCHER}\n")
    assert diagnosis.out_of_memory(path.read_text())
    text = diagnosis.diagnose(1, None, path)
    assert diagnosis.headline(text).startswith("out of memory"), text
    assert "minibatch_size" in diagnosis.headline(text)


@pytest.mark.parametrize("name", sorted(NOT_OOM))
def test_other_failures_are_not_called_out_of_memory(tmp_path, name):
    path = tmp_path / "log.txt"
    path.write_text(f"{NOT_OOM[name]}\n{LAUNCHER}\n")
    assert not diagnosis.out_of_memory(path.read_text())
    assert not diagnosis.headline(diagnosis.diagnose(1, None, path)).startswith("out of memory")
