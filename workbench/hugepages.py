"""glibc's heap on transparent huge pages, for the processes that train on the CPU.

A CPU training step streams its activations through tens of MB of heap. On 4 KiB pages that needs thousands of
TLB entries, and in a virtual machine each TLB miss walks two page tables. With the tunable glibc.malloc.hugetlb=1
(glibc 2.35+) glibc grows its heap in 2 MiB steps advised for huge pages; the kernel honours that when THP is
'madvise' or 'always', and older glibc or other C libraries ignore it. glibc reads tunables only when a process
starts, so the command-line entry points restart themselves once with it, before torch is imported.

On the 2-core benchmark VM (THP 'madvise') the 3 x 512 MLP step at batch 4096 took 42.0 ms on average instead of
44.5 ms, and 45.6 ms instead of 49.3 ms in the slowest process (`python -m benchmarks --only utilisation`, 7
processes each, alternating). The VM's own slow spells remain: they come from the host, not from the heap. Peak
memory of the 1M-row ingest and training benchmarks was the same.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

TUNABLE = "glibc.malloc.hugetlb"


def huge_page_env(env: Mapping[str, str]) -> dict[str, str]:
    """`env` with the tunable added to GLIBC_TUNABLES, unless that already sets it (e.g. `=0`, to opt out)."""
    tunables = env.get("GLIBC_TUNABLES", "")
    if TUNABLE in tunables:
        return dict(env)
    return {**env, "GLIBC_TUNABLES": ":".join(filter(None, (tunables, f"{TUNABLE}=1")))}


def passive_openmp_threads() -> None:
    """OpenMP threads (torch's and scikit-learn's) that wait by sleeping, not spinning, unless the user chose. A
    machine that also runs a browser, the app or another training is never idle, and spinning threads then wait a
    whole scheduler slice at every parallel region: on a busy 2-core machine a small TabM step took 25x longer
    (AdamW 55 ms against 0.7 ms, backward 41 ms against 1.9 ms). libgomp reads this when it loads, so call it first
    thing in a `__main__`."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def restart_with_huge_page_heap() -> None:
    """Re-execute this process (same pid, same arguments) with the tunable set; a no-op once it is set and off
    Linux. Call it first thing in a `__main__`: everything done before is lost."""
    if not sys.platform.startswith("linux") or not sys.executable:
        return
    env = huge_page_env(os.environ)
    if env.get("GLIBC_TUNABLES") == os.environ.get("GLIBC_TUNABLES"):
        return
    sys.stdout.flush()  # what was printed so far would be lost with the old process's buffers
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
