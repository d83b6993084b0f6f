import sys

from workbench.hugepages import restart_with_huge_page_heap

restart_with_huge_page_heap()  # first: glibc reads its tunables only when the process starts

from workbench.cli import main  # noqa: E402

sys.exit(main())
