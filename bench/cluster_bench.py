#!/usr/bin/python3
"""cluster_bench.py — sign-ins through a 3-node dqlite cluster against the floor:
plain two-row INSERTs through the same client and the same cluster.

    bench/cluster_bench.py [-n N] [-runs R] [--latency-ms MS] [--port-base P]
                           [--dir DIR] [--so PATH] [--diagnose]

Starts three anonauth-node processes on 127.0.0.1 (build/cluster/anonauth-node,
ports P+1..P+3, or free ones when no base is given; --latency-ms 20 by default,
as in the tests and the demo; 0 keeps dqlite's default), then alternates, R
times each (3 by default), on a fresh database of the cluster every run:

  floor     BEGIN (exec); one exec request with two statements:
              INSERT INTO users(created_at) VALUES (unixepoch());
              INSERT INTO sessions(token_hash, user_id, expires_at)
                VALUES (randomblob(32), last_insert_rowid(), unixepoch() + 2592000);
            COMMIT (exec). The 32 random bytes are made by SQLite on the
            leader (randomblob), as anonauth makes its token there.
            Tables: users(id INTEGER PRIMARY KEY, created_at), sessions(id
            INTEGER PRIMARY KEY, token_hash BLOB UNIQUE, user_id, expires_at)
            and an index on sessions(user_id): the least a sign-in needs.
  anonauth  BEGIN (exec); SELECT anon_signin() (query); COMMIT (exec): the
            calling pattern that replicates (docs/cluster.md).

Both sides make three round trips, and their COMMIT waits for a Raft quorum;
the client (cluster/dqlite_client.py) and its per-request cost are the same.
Each line is the median of the runs. Below it: the latency per sign-in and
how it splits between the three requests (means over the median runs), a bare
round trip for scale, what the leader process wrote per sign-in
(/proc/PID/io: wchar counts its raft log and what it sends to the followers
and the client), and the WAL frames (B-tree pages) one sign-in commits, counted
on a local WAL file with the same statements (/usr/bin/python3 loading
anonauth.so; skipped without it). dqlite replicates those pages: each commit
is one Raft entry holding its frames.

--diagnose adds a third side: the floor in a database that also holds
anonauth's schema (created by one sign-in, then unused), which separates what
the schema's size costs per commit from what the pages cost.

Stops every node it started, on success, error, SIGINT, SIGTERM or SIGHUP.
"""
import argparse
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "cluster"))
import dqlite_client as dq  # noqa: E402
import localcluster as lc  # noqa: E402

FLOOR_SCHEMA = [
    "CREATE TABLE users(id INTEGER PRIMARY KEY, created_at INTEGER NOT NULL)",
    "CREATE TABLE sessions(id INTEGER PRIMARY KEY, token_hash BLOB NOT NULL UNIQUE, "
    "user_id INTEGER NOT NULL, expires_at INTEGER NOT NULL)",
    "CREATE INDEX sessions_by_user ON sessions(user_id)",
]
FLOOR_SIGNIN = (
    "INSERT INTO users(created_at) VALUES (unixepoch()); "
    "INSERT INTO sessions(token_hash, user_id, expires_at) "
    "VALUES (randomblob(32), last_insert_rowid(), unixepoch() + 2592000)")
EXT_SIGNIN = "SELECT anon_signin()"
WARMUP = 300  # untimed first: anonauth's schema, and both WALs past dqlite's first checkpoint (1000 frames)


class Stop(Exception):
    pass


def on_signal(signum, frame):
    raise Stop(f"signal {signum}")


def proc_kib(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def proc_io(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/io") as f:
            for line in f:
                k, v = line.split(":")
                out[k] = int(v)
    except OSError:
        pass
    return out


TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid):
    """User + system CPU seconds of a process so far."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, IndexError, ValueError):
        return 0.0


def cluster_cpu(cl, leader):
    """(leader's, followers' summed) CPU seconds so far."""
    others = sum(proc_cpu(n.proc.pid) for n in cl.nodes if n.alive and n is not leader)
    return proc_cpu(leader.proc.pid), others


def closed_segments(node_dir):
    """{name: size} of the node's closed Raft log segments (FIRST-LAST)."""
    out = {}
    try:
        for name in os.listdir(node_dir):
            first, sep, last = name.partition("-")
            if sep and first.isdigit() and last.isdigit():
                out[name] = os.path.getsize(os.path.join(node_dir, name))
    except OSError:
        pass
    return out


def entry_bytes(before, after):
    """Mean bytes per Raft entry over the segments closed in between."""
    new = [k for k in after if k not in before]
    entries = sum(int(k.split("-")[1]) - int(k.split("-")[0]) + 1 for k in new)
    return sum(after[k] for k in new) / entries if entries else 0.0


class Side:
    """One side of the comparison: how to set up a fresh database and do one
    sign-in as BEGIN, one request, COMMIT."""

    def __init__(self, name, prefix):
        self.name, self.prefix = name, prefix

    def setup(self, c):
        pass

    def middle(self, c):
        raise NotImplementedError

    def check(self, c, n):
        raise NotImplementedError


class Floor(Side):
    def setup(self, c):
        c.execute("BEGIN")
        for sql in FLOOR_SCHEMA:
            c.execute(sql)
        c.execute("COMMIT")

    def middle(self, c):
        c.execute(FLOOR_SIGNIN)

    def check(self, c, n):
        return c.query("SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM sessions)")[0] == (n, n)


class Anonauth(Side):
    def middle(self, c):
        token = c.query(EXT_SIGNIN)[0][0]
        if not token.startswith("anonauth_sess_"):
            raise RuntimeError("anon_signin() returned something else than a token")

    def check(self, c, n):
        return c.query("SELECT (SELECT count(*) FROM anonauth_users), "
                       "(SELECT count(*) FROM anonauth_sessions)")[0] == (n, n)


class FloorWithSchema(Floor):
    """The floor in a database that also holds anonauth's schema (made by one
    sign-in, then unused): isolates what the schema's size costs per commit."""

    def setup(self, c):
        super().setup(c)
        c.execute("BEGIN")
        c.query(EXT_SIGNIN)
        c.execute("COMMIT")


class LeaderChanged(Exception):
    pass


def one_run(cl, side, run, n, tries=3):
    """one_run_once, again on a fresh database when leadership moved (an
    election on a loaded machine), at most `tries` times."""
    for attempt in range(1, tries + 1):
        try:
            return one_run_once(cl, side, f"{run}.{attempt}", n)
        except (LeaderChanged, OSError, TimeoutError, dq.DqliteError) as e:
            if isinstance(e, dq.DqliteError) and not e.leader_gone:
                raise
            if attempt == tries:
                raise
            print(f"cluster bench: {side.name} run {run}: {e}; again", file=sys.stderr)
    raise AssertionError("unreachable")


def one_run_once(cl, side, run, n):
    """n timed sign-ins on a fresh database; returns a dict of results."""
    db = f"{side.prefix}-{run}"
    leader = cl.leader()
    c = dq.find_leader(cl.live_servers(), deadline=10.0).open(db)
    try:
        side.setup(c)
        for _ in range(WARMUP):
            c.execute("BEGIN")
            side.middle(c)
            c.execute("COMMIT")
        io0 = proc_io(leader.proc.pid)
        seg0 = closed_segments(leader.dir)
        cpu0, client0 = cluster_cpu(cl, leader), os.times()
        t_begin = t_mid = t_commit = 0.0
        clock = time.perf_counter
        t0 = clock()
        for _ in range(n):
            a = clock()
            c.execute("BEGIN")
            b = clock()
            side.middle(c)
            d = clock()
            c.execute("COMMIT")
            e = clock()
            t_begin += b - a
            t_mid += d - b
            t_commit += e - d
        elapsed = clock() - t0
        io1 = proc_io(leader.proc.pid)
        seg1 = closed_segments(leader.dir)
        cpu1, client1 = cluster_cpu(cl, leader), os.times()
        if cl.leader() is not leader:
            raise LeaderChanged("the leader changed during the run")
        if not side.check(c, n + WARMUP):
            raise RuntimeError(f"{side.name}: the row counts are not {n + WARMUP}")
        # A bare round trip for scale: a read-only query of nothing.
        rt = []
        for _ in range(200):
            a = clock()
            c.query("SELECT 1")
            rt.append(clock() - a)
    finally:
        c.close()
    return {
        "ops": n / elapsed,
        "ms": 1000 * elapsed / n,
        "begin": 1000 * t_begin / n, "mid": 1000 * t_mid / n, "commit": 1000 * t_commit / n,
        "rtt": 1000 * statistics.median(rt),
        "wchar": (io1.get("wchar", 0) - io0.get("wchar", 0)) / n / 1024,
        "syscw": (io1.get("syscw", 0) - io0.get("syscw", 0)) / n,
        "cpu_leader": 1000 * (cpu1[0] - cpu0[0]) / n,
        "cpu_followers": 1000 * (cpu1[1] - cpu0[1]) / n,
        "cpu_client": 1000 * (client1.user + client1.system - client0.user - client0.system) / n,
        "entry": entry_bytes(seg0, seg1) / 1024,
        "disk": (io1.get("write_bytes", 0) - io0.get("write_bytes", 0)) / n / 1024,
    }


def runs_of(results):
    return " ".join(f"{r['ops']:.0f}" for r in results)


def median_run(results):
    """The run whose throughput is the median (its split is reported)."""
    return sorted(results, key=lambda r: r["ops"])[len(results) // 2]


def wal_frames(path, so, k=200):
    """WAL frames per commit for k sign-ins of each side on a local file
    (page size 4096 as dqlite's), each in BEGIN ... COMMIT; (anonauth,
    floor), or None when the extension cannot be loaded here."""
    out = []
    for side in ("anonauth", "floor"):
        f = os.path.join(path, f"frames-{side}.db")
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(f + suffix):
                os.remove(f + suffix)
        db = sqlite3.connect(f, isolation_level=None)
        try:
            db.execute("PRAGMA page_size=4096")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA wal_autocheckpoint=0")
            if side == "anonauth":
                db.enable_load_extension(True)
                db.load_extension(so)
                stmt = [EXT_SIGNIN]
            else:
                for sql in FLOOR_SCHEMA:
                    db.execute(sql)
                stmt = [s.strip() for s in FLOOR_SIGNIN.split(";")]
            for i in range(WARMUP + k):
                if i == WARMUP:
                    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                db.execute("BEGIN")
                for s in stmt:
                    db.execute(s).fetchall()
                db.execute("COMMIT")
            _, frames, _ = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            out.append(frames / k)
        except (sqlite3.Error, AttributeError):
            return None
        finally:
            db.close()
    return tuple(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=2000, help="timed sign-ins per run (default 2000)")
    ap.add_argument("-runs", type=int, default=3)
    ap.add_argument("--latency-ms", type=int, default=20,
                    help="the nodes' --latency-ms (default 20; 0: dqlite's default)")
    ap.add_argument("--port-base", type=int, default=int(os.environ.get("CLUSTER_PORT_BASE") or 0),
                    help="ports BASE+1..BASE+3 (default $CLUSTER_PORT_BASE, else free ones)")
    ap.add_argument("--dir", default=os.path.join(ROOT, "build", "bench", "cluster"))
    ap.add_argument("--diagnose", action="store_true",
                    help="also the floor in a database holding anonauth's schema, unused")
    ap.add_argument("--so", default=os.path.join(ROOT, "anonauth"))
    args = ap.parse_args()
    if args.n < 100 or not 1 <= args.runs <= 9:
        ap.error("N must be at least 100 and runs 1..9")
    if not os.access(lc.NODE_BIN, os.X_OK):
        print(f"cluster bench: missing {lc.NODE_BIN}: run 'make cluster' first", file=sys.stderr)
        return 1
    ports = [args.port_base + i for i in (1, 2, 3)] if args.port_base else None

    for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(s, on_signal)
    cl = lc.LocalCluster(args.dir, n=3, ports=ports, latency_ms=args.latency_ms or None)
    try:
        cl.start()
        leader = cl.leader()
        with dq.find_leader(cl.live_servers(), deadline=10.0).open("info") as c:
            sqlite_version = c.value("SELECT sqlite_version()")
        try:
            dqlite_version = subprocess.run(["pkg-config", "--modversion", "dqlite"],
                                            capture_output=True, text=True).stdout.strip()
        except OSError:
            dqlite_version = ""
        print(f"anonauth cluster bench: N={args.n} sign-ins, {args.runs} runs per side (medians), "
              f"3 dqlite {dqlite_version or '?'} nodes on 127.0.0.1 "
              f"({','.join(str(p.address.rsplit(':', 1)[1]) for p in cl.nodes)}), "
              f"--latency-ms {args.latency_ms or 'default'}, SQLite {sqlite_version}, "
              f"leader node {leader.id}")
        sys.stdout.flush()
        floor, ext = Floor("floor", "floor"), Anonauth("anonauth", "anonauth")
        schema = FloorWithSchema("floor with anonauth's schema", "floorschema")
        fl, ex, fs = [], [], []
        for r in range(1, args.runs + 1):
            fl.append(one_run(cl, floor, r, args.n))
            ex.append(one_run(cl, ext, r, args.n))
            if args.diagnose:
                fs.append(one_run(cl, schema, r, args.n))
        leader = cl.leader()
        rss = proc_kib(leader.proc.pid, "VmHWM:") // 1024
        ext_ops = statistics.median(r["ops"] for r in ex)
        fl_ops = statistics.median(r["ops"] for r in fl)
        print(f"{'anon_signin, 3-node dqlite cluster':<34} {ext_ops:10.0f} ops/s  floor {fl_ops:10.0f} ops/s"
              f"  ratio {ext_ops / fl_ops:5.2f}  {'>= 0.80':<8} leader peak RSS {rss:5d} MiB")
        e, f = median_run(ex), median_run(fl)
        print(f"  latency per sign-in {e['ms']:.3f} ms, floor {f['ms']:.3f} ms "
              f"(runs, ops/s: anonauth {runs_of(ex)}, floor {runs_of(fl)})")
        print(f"  split, ms: BEGIN {e['begin']:.3f} / anon_signin query {e['mid']:.3f} / COMMIT {e['commit']:.3f};"
              f" floor BEGIN {f['begin']:.3f} / INSERTs {f['mid']:.3f} / COMMIT {f['commit']:.3f};"
              f" bare round trip {e['rtt']:.3f}")
        print(f"  leader writes per sign-in: {e['wchar']:.1f} KiB in {e['syscw']:.1f} write calls, "
              f"{e['disk']:.1f} KiB to disk; floor {f['wchar']:.1f} KiB in {f['syscw']:.1f}, "
              f"{f['disk']:.1f} KiB to disk; Raft log per commit (closed segments): "
              f"anonauth {e['entry']:.1f} KiB, floor {f['entry']:.1f} KiB")
        print(f"  CPU per sign-in, ms: leader {e['cpu_leader']:.3f}, followers {e['cpu_followers']:.3f}, "
              f"client {e['cpu_client']:.3f}; floor {f['cpu_leader']:.3f}, {f['cpu_followers']:.3f}, "
              f"{f['cpu_client']:.3f}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        if fs:
            g = median_run(fs)
            fs_ops = statistics.median(r["ops"] for r in fs)
            print(f"  diagnosis: the floor in a database that also holds anonauth's schema (unused): "
                  f"{fs_ops:.0f} ops/s (runs {runs_of(fs)}), {g['ms']:.3f} ms, COMMIT {g['commit']:.3f} ms, "
                  f"CPU leader {g['cpu_leader']:.3f}, followers {g['cpu_followers']:.3f} ms; "
                  f"anonauth / this = {ext_ops / fs_ops:.2f}, this / floor = {fs_ops / fl_ops:.2f}")
        frames = wal_frames(args.dir, args.so) if os.path.exists(args.so + ".so") else None
        if frames:
            print(f"  WAL frames (4 KiB pages) per sign-in, local file: anonauth {frames[0]:.2f}, "
                  f"floor {frames[1]:.2f}")
        else:
            print(f"  WAL frames per sign-in: skipped ({args.so}.so cannot be loaded by {sys.executable})")
        return 0
    except Stop as s:
        print(f"cluster bench: stopped by {s}", file=sys.stderr)
        return 1
    except (dq.DqliteError, OSError, TimeoutError, RuntimeError) as err:
        print(f"cluster bench: {err} (node logs in {args.dir})", file=sys.stderr)
        return 1
    finally:
        for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(s, signal.SIG_IGN)
        cl.stop()


if __name__ == "__main__":
    sys.exit(main())
