import os
import subprocess
import sys

import pytest

from workbench.hugepages import huge_page_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_huge_page_env_adds_the_tunable_and_keeps_the_others():
    assert huge_page_env({})["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=1"
    env = huge_page_env({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2", "PATH": "/bin"})
    assert env == {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1", "PATH": "/bin"}


def test_huge_page_env_leaves_a_setting_the_user_made():
    env = {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}
    assert huge_page_env(env) == env


def _run_restarting(env: dict[str, str]) -> list[str]:
    """A process that prints its pid, restarts itself with the tunable, and prints its pid and tunables again."""
    code = ("import os, sys; print('pid', os.getpid()); from workbench.hugepages import restart_with_huge_page_heap; "
            "restart_with_huge_page_heap(); print('pid', os.getpid()); print('tunables', os.environ['GLIBC_TUNABLES'])")
    done = subprocess.run([sys.executable, "-c", code], env={**env, "PYTHONPATH": ROOT}, capture_output=True,
                          text=True, check=True)
    return done.stdout.splitlines()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc tunables: Linux only")
def test_a_process_restarts_once_with_the_tunable_under_the_same_pid():
    lines = _run_restarting({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})
    pid = lines[0]
    # printed before the restart, then again by the restarted process: same pid, and restarted only once
    assert lines == [pid, pid, pid, "tunables glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc tunables: Linux only")
def test_no_restart_when_the_tunable_is_set():
    lines = _run_restarting({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"})
    assert lines[0] == lines[1] and lines[2] == "tunables glibc.malloc.hugetlb=0" and len(lines) == 3


def test_workers_and_the_cli_wait_for_openmp_work_by_sleeping(tmp_path):
    """A busy machine (a browser, the app, another run) made spinning OpenMP threads 25x slower per step."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | {"WORKBENCH_HOME": str(tmp_path)}
    worker = subprocess.Popen([sys.executable, "-m", "workbench", "worker", "--idle-exit", "30"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import time

        deadline = time.monotonic() + 60
        environ = b""
        while b"OMP_WAIT_POLICY=PASSIVE" not in environ and time.monotonic() < deadline:
            time.sleep(0.2)
            environ = open(f"/proc/{worker.pid}/environ", "rb").read()  # after the process has re-executed
        assert b"OMP_WAIT_POLICY=PASSIVE" in environ.split(b"\0")
    finally:
        worker.kill()
        worker.wait()
    chosen = subprocess.run([sys.executable, "-c", "import os; from workbench.hugepages import passive_openmp_threads;"
                             " passive_openmp_threads(); print(os.environ['OMP_WAIT_POLICY'])"],
                            env=env | {"OMP_WAIT_POLICY": "ACTIVE"}, capture_output=True, text=True, check=True)
    assert chosen.stdout.strip() == "ACTIVE"  # a user's own choice stays
