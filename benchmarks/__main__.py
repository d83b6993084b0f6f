"""`python -m benchmarks`: the suite (benchmarks/suite.py) in a process whose heap is on huge pages, as the trainer's."""

import sys

from workbench.hugepages import passive_openmp_threads, restart_with_huge_page_heap

passive_openmp_threads()  # as `python -m workbench`: the benchmarks measure what a user's worker runs
restart_with_huge_page_heap()  # first: glibc reads its tunables only when the process starts

from benchmarks.suite import main  # noqa: E402

sys.exit(main())
