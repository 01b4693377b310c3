"""localcluster.py — start, join, kill and stop anonauth nodes on 127.0.0.1.

Used by cluster/demo.sh (through `localcluster.py up|down`) and by
tests/cluster/test_cluster.py. Every wait polls with a deadline; nothing
sleeps for correctness.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dqlite_client as dq  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NODE_BIN = os.path.join(ROOT, "build", "cluster", "anonauth-node")


def free_ports(n):
    """n TCP ports on 127.0.0.1 that nothing listens on right now."""
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


class Node:
    def __init__(self, node_id, address, data_dir):
        self.id, self.address, self.dir = node_id, address, data_dir
        self.proc = None

    @property
    def alive(self):
        return self.proc is not None and self.proc.poll() is None


class LocalCluster:
    """n nodes with ids 1..n; node 1 bootstraps, the others join it."""

    def __init__(self, base_dir, n=3, ports=None, unguarded=False, node_bin=NODE_BIN,
                 latency_ms=None, log=None):
        ports = ports or free_ports(n)
        self.base_dir = base_dir
        self.unguarded = unguarded
        self.latency_ms = latency_ms
        self.node_bin = node_bin
        self.log = log or (lambda msg: None)
        self.nodes = [Node(i + 1, f"127.0.0.1:{ports[i]}", os.path.join(base_dir, f"node{i + 1}"))
                      for i in range(n)]

    @property
    def servers(self):
        return [n.address for n in self.nodes]

    def node(self, node_id):
        return self.nodes[node_id - 1]

    def by_address(self, address):
        return next(n for n in self.nodes if n.address == address)

    def start_node(self, node, deadline=10.0):
        os.makedirs(node.dir, exist_ok=True)
        args = [self.node_bin, "--id", str(node.id), "--address", node.address, "--dir", node.dir]
        if self.unguarded:
            args.append("--unguarded")
        if self.latency_ms:
            args += ["--latency-ms", str(self.latency_ms)]
        err = open(os.path.join(self.base_dir, f"node{node.id}.log"), "ab")
        node.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err,
                                     stdin=subprocess.DEVNULL)
        err.close()
        line = node.proc.stdout.readline().decode(errors="replace")
        if "ready" not in line:
            raise RuntimeError(f"node {node.id} did not start: {line!r} "
                               f"(see {self.base_dir}/node{node.id}.log)")
        self.log(f"node {node.id} listening on {node.address}")

    def start(self, deadline=15.0):
        if os.path.exists(self.base_dir):
            shutil.rmtree(self.base_dir)
        os.makedirs(self.base_dir)
        for node in self.nodes:
            self.start_node(node)
        for node in self.nodes[1:]:
            dq.join(self.servers, node.id, node.address, deadline=deadline)
            self.log(f"node {node.id} joined as a voter")
        return self

    def leader(self, deadline=10.0):
        """The Node that leads now, polling until one does."""
        with dq.find_leader(self.live_servers(), deadline=deadline) as c:
            _, address = c.leader()
        return self.by_address(address)

    def live_servers(self):
        return [n.address for n in self.nodes if n.alive]

    def connect(self, deadline=10.0):
        return dq.connect(self.live_servers(), deadline=deadline)

    def connect_to(self, node, deadline=10.0):
        """A connection to `node` after making it the leader, so that what it
        answers comes from its own copy of the database."""
        end = time.monotonic() + deadline
        while True:
            try:
                if self.leader(deadline=max(0.1, end - time.monotonic())) is not node:
                    with dq.find_leader(self.live_servers(), deadline=2.0) as c:
                        c.transfer(node.id)
                c = dq.Connection(node.address)
                _, address = c.leader()
                if address == node.address:
                    return c.open()
                c.close()
            except (dq.DqliteError, OSError, TimeoutError):
                pass
            if time.monotonic() >= end:
                raise TimeoutError(f"node {node.id} did not become the leader")
            time.sleep(0.05)

    def kill(self, node):
        """SIGKILL: no chance to flush, hand over or say goodbye."""
        node.proc.send_signal(signal.SIGKILL)
        node.proc.wait()
        node.proc.stdout.close()
        self.log(f"node {node.id} killed with SIGKILL")

    def wait_new_leader(self, old, deadline=20.0):
        """Polls the surviving nodes until one of them leads; returns
        (node, seconds waited)."""
        t0 = time.monotonic()
        end = t0 + deadline
        while True:
            try:
                node = self.leader(deadline=max(0.1, end - time.monotonic()))
                if node is not old:
                    return node, time.monotonic() - t0
            except (TimeoutError, dq.DqliteError, OSError):
                pass
            if time.monotonic() >= end:
                raise TimeoutError("no new leader")
            time.sleep(0.05)

    def stop(self):
        for node in self.nodes:
            if node.alive:
                node.proc.send_signal(signal.SIGTERM)
        for node in self.nodes:
            if node.proc is not None:
                try:
                    node.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    node.proc.kill()
                    node.proc.wait()
                if node.proc.stdout:
                    node.proc.stdout.close()
                node.proc = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
