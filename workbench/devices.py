"""Which device training uses and how: the device asked for, bf16 autocast, CPU threads and allocator; and the same
in words for the Home page and the CLI."""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from functools import cache

import torch

from workbench.errors import UserError

MAX_CPU_THREADS = 8  # small tabular models stop gaining from more threads well before this


def best_device() -> str:
    """cuda, then mps, then cpu."""
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def select_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device(best_device())
    if requested == "cuda" and not torch.cuda.is_available():
        raise UserError("A CUDA GPU was asked for, but this machine has none; choose 'auto' or 'cpu'.")
    mps = getattr(torch.backends, "mps", None)
    if requested == "mps" and not (mps and mps.is_available()):
        raise UserError("An Apple GPU (MPS) was asked for, but this machine has none; choose 'auto' or 'cpu'.")
    return torch.device(requested)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX512-BF16 or AMX); elsewhere bf16 is emulated and slower."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def describe_device() -> str:
    device = best_device()
    if device == "cuda":
        return f"GPU: {torch.cuda.get_device_name(0)}"
    if device == "mps":
        return "GPU: Apple silicon (MPS)"
    return f"CPU ({torch.get_num_threads()} threads)"


def describe_precision() -> str:
    """What mixed precision 'auto' does on the best device, in one sentence (it follows autocast_for)."""
    device = best_device()
    if device == "cuda" or (device == "cpu" and cpu_has_native_bf16()):
        return "Neural models train in bf16 mixed precision here by default: this device does bf16 in hardware."
    return "Neural models train in float32 here by default: this device has no bf16 in hardware."


def autocast_for(device: torch.device, mixed_precision: str):
    """bf16 autocast for the `mixed_precision` setting: 'on', or 'auto' on CUDA and on CPUs with native bf16 (weights, optimizer and loss stay fp32).
    On the 2-core AVX512-BF16 benchmark CPU a 200k-row epoch of the default MLP took 0.95 s instead of 1.25 s."""
    if device.type not in ("cuda", "cpu") or mixed_precision == "off":
        return nullcontext()
    if mixed_precision == "on" or device.type == "cuda" or cpu_has_native_bf16():
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters
_allocator_tuned = False


def tune_cpu_allocator() -> None:
    """Keep freed activation buffers in the heap instead of handing them back to the OS (glibc, Linux only).

    By default glibc serves every block above its mmap threshold (128 KiB at first, adapting up to 32 MiB) with a
    fresh mmap, and trims the heap once 128 KiB+ is free at its top, so each training step's activations and
    gradients (a 4096 x 512 float32 batch is 8 MiB) come back as new zero pages: one page fault per 4 KiB. On a
    CPU that made element-wise ops (ReLU, dropout, Adam) 10-20x slower than their arithmetic. Blocks up to 32 MiB
    now come from the heap, which keeps up to 512 MiB of free space for reuse. Process-wide; done once, on the
    first CPU training; peak memory is unchanged (the freed space is reused, not added to).
    """
    global _allocator_tuned
    if _allocator_tuned:
        return
    _allocator_tuned = True
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024)
        libc.mallopt(_M_TRIM_THRESHOLD, 512 * 1024 * 1024)
    except (OSError, AttributeError):  # not glibc (e.g. musl): keep its defaults
        pass


def share_cores(workers: int) -> int:
    """A worker process among `workers` on this machine trains on its share of the cores (torch, and scikit-learn's
    OpenMP and BLAS pools): with every core each, two workers' threads fight over the same cores and every step
    waits for its slowest thread. Returns the threads each worker gets."""
    threads = max(1, _available_cores() // max(1, workers))
    if workers > 1:
        torch.set_num_threads(min(threads, MAX_CPU_THREADS))
        thread_pools().limit(limits=threads)
    return threads


SMALL_TABLE_ROWS = 20_000


def classical_threads(n_rows: int):
    """A context for a scikit-learn fit or prediction over `n_rows` rows: one OpenMP thread below SMALL_TABLE_ROWS.
    There a histogram-boosting fit is all thread start-up and barriers: 600 rows took 0.6-0.8 s on two threads and
    0.05-0.07 s on one on a busy 2-core machine (and 2.3 s against 0.13 s once torch's own OpenMP pool had run in the
    same process). Larger tables keep every thread the worker has."""
    return one_thread() if n_rows < SMALL_TABLE_ROWS else nullcontext()


def one_thread():
    """A context in which scikit-learn's OpenMP and BLAS pools (and torch's OpenMP) use one thread."""
    return thread_pools().limit(limits=1)


@cache
def thread_pools():
    """The process's OpenMP and BLAS thread pools, found once. Finding them (threadpoolctl reads every loaded library)
    took 70 ms on a busy machine: `threadpool_limits` does it on every call, which made each small prediction of a
    boosted model cost 70 ms and permutation importance on 45 rows 24 s. scikit-learn's OpenMP library is loaded
    first, so that it is among them."""
    import sklearn.ensemble  # noqa: F401  (loads scikit-learn's libgomp)
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


# Below this many floating-point operations a training step (forward and backward) runs on one thread: its work is
# too small to share, and every operation waits for the other threads at a barrier. Measured on 2 cores with the
# sleeping wait policy (`python -m workbench` sets it): the default MLP on 50 numbers at batch 256 (0.18 GFLOP a step)
# took 2.0 ms a step on one thread against 4.2 on two, at batch 1024 (0.74) 6.1 against 6.5; from 2 GFLOP two threads
# were faster (256 x 2 at batch 4096: 6.4 ms against 7.3; 3 x 512 at 4096: 23 against 39). Beside a CPU-bound
# process, one thread kept the default step at 3.0-3.5 ms where two took 3.5-3.9 (sleeping) or 4.4-10 (spinning).
ONE_THREAD_BELOW_FLOPS = 1e9


@contextmanager
def training_threads(step_flops: float) -> Iterator[int]:
    """Torch's threads while training on the CPU: those the process may use (`limit_cpu_threads`), or one for a step
    under ONE_THREAD_BELOW_FLOPS; the count before comes back afterwards (scoring many rows shares them well)."""
    threads = limit_cpu_threads()
    if threads == 1 or step_flops >= ONE_THREAD_BELOW_FLOPS:
        yield threads
        return
    torch.set_num_threads(1)
    try:
        yield 1
    finally:
        torch.set_num_threads(threads)


def limit_cpu_threads() -> int:
    """At most the cores this process may use (and at most 8): more threads than cores slows tiny models down."""
    threads = max(1, min(_available_cores(), MAX_CPU_THREADS, torch.get_num_threads()))
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    return threads
