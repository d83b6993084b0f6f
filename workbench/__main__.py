import sys

from workbench.hugepages import passive_openmp_threads, restart_with_huge_page_heap

passive_openmp_threads()  # before torch or scikit-learn loads OpenMP
restart_with_huge_page_heap()  # first: glibc reads its tunables only when the process starts

from workbench.cli import main  # noqa: E402

sys.exit(main())
