"""A real Ray cluster on loopback for the Ray executor's tests and benchmark: a head node and more nodes, each with
its own CPU count, each a `ray start --block` in a session of its own, so that stopping the cluster or killing one
node ends exactly that node's processes (its workers included) and never another Ray on the machine, as
`ray stop` would."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from tests.conftest import _free_port

RAY = Path(sys.executable).with_name("ray")
START_TIMEOUT_S = 120.0


class LocalRayCluster:
    def __init__(self) -> None:
        # Short: Ray's socket paths live under it and must stay under the kernel's 108 characters.
        self.root = Path(tempfile.mkdtemp(prefix="wbray-"))
        self.port = _free_port()
        self.nodes: list[subprocess.Popen] = []

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def add_node(self, cpus: int = 1) -> subprocess.Popen:
        """Start a node (the first one is the head) and wait until it has joined."""
        head = not self.nodes
        where = ["--head", f"--port={self.port}", "--include-dashboard=false"] if head else [
            f"--address={self.address}"]
        log = self.root / f"node{len(self.nodes)}.log"
        command = [str(RAY), "start", "--block", *where, "--node-ip-address=127.0.0.1", f"--num-cpus={cpus}",
                   "--num-gpus=0", f"--temp-dir={self.root / 'ray'}", "--object-store-memory=100000000",
                   "--disable-usage-stats"]
        with open(log, "w") as out:
            node = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, env=dict(os.environ, RAY_USAGE_STATS_ENABLED="0"))
        self.nodes.append(node)
        deadline = time.monotonic() + START_TIMEOUT_S
        while "Ray runtime started" not in log.read_text():
            if node.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"a Ray node did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        return node

    def revive(self) -> None:
        """Start a new node in place of each worker node that was killed."""
        for index in range(1, len(self.nodes)):
            if self.nodes[index].poll() is not None:
                self.add_node()
                self.nodes[index] = self.nodes.pop()

    def kill_node(self, node: subprocess.Popen) -> None:
        """The node dies at once, as a machine that loses power: every process of its session gets SIGKILL."""
        self._signal_session(node, signal.SIGKILL)
        node.wait(timeout=30)

    def stop(self) -> None:
        """Kill every node at once: a graceful stop drains for up to 30 s, and nothing here is worth keeping."""
        for node in self.nodes:
            self.kill_node(node)
        shutil.rmtree(self.root, ignore_errors=True)

    @staticmethod
    def _signal_session(node: subprocess.Popen, signum: int) -> None:
        for process in psutil.process_iter():
            try:
                if os.getsid(process.pid) == node.pid:
                    process.send_signal(signum)
            except (ProcessLookupError, psutil.NoSuchProcess, PermissionError):
                continue
