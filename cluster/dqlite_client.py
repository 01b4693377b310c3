#!/usr/bin/python3
"""dqlite_client.py — a small client for dqlite's wire protocol (version 1).

Why our own: the `dqlite` shell from go-dqlite is the ready client for people,
but it wraps every line in BEGIN ... COMMIT and cannot add nodes. The demo and
the tests need to say exactly which request carries a statement (EXEC_SQL or
QUERY_SQL), to add nodes to the cluster, to move leadership, and to keep a
token in memory without printing it. Standard library only.

As a program:
  dqlite_client.py -s HOST:PORT[,HOST:PORT...] leader
  dqlite_client.py -s ... cluster
  dqlite_client.py -s ... join ID ADDRESS      (add the node, make it a voter)
  dqlite_client.py -s ... transfer ID          (make node ID the leader)
  dqlite_client.py -s ... exec SQL             (EXEC_SQL on the leader)
  dqlite_client.py -s ... query SQL            (QUERY_SQL, rows as a|b|c)
  dqlite_client.py -s ... tx SQL               (QUERY_SQL inside BEGIN ... COMMIT)
"""
import math
import socket
import struct
import sys
import time

PROTOCOL_VERSION = 1

# Request types.
REQ_LEADER, REQ_CLIENT, REQ_OPEN = 0, 1, 3
REQ_EXEC_SQL, REQ_QUERY_SQL = 8, 9
REQ_ADD, REQ_ASSIGN, REQ_REMOVE, REQ_CLUSTER, REQ_TRANSFER = 12, 13, 14, 16, 17

# Response types.
RES_FAILURE, RES_SERVER, RES_WELCOME, RES_SERVERS = 0, 1, 2, 3
RES_DB, RES_RESULT, RES_ROWS, RES_EMPTY = 4, 6, 7, 8

# Value types.
T_INTEGER, T_FLOAT, T_TEXT, T_BLOB, T_NULL = 1, 2, 3, 4, 5
T_UNIXTIME, T_ISO8601, T_BOOLEAN = 9, 10, 11

ROWS_DONE = 0xFFFFFFFFFFFFFFFF
ROWS_PART = 0xEEEEEEEEEEEEEEEE

ROLES = {"voter": 0, "standby": 1, "spare": 2}
ROLE_NAMES = {v: k for k, v in ROLES.items()}

# SQLite extended codes that mean "ask another node".
SQLITE_IOERR_NOT_LEADER = 10 | (40 << 8)
SQLITE_IOERR_LEADERSHIP_LOST = 10 | (41 << 8)


class DqliteError(Exception):
    """A FAILURE response: code is the SQLite (extended) result code."""

    def __init__(self, code, message):
        super().__init__(f"{message} (code {code})")
        self.code = code
        self.message = message

    @property
    def leader_gone(self):
        return self.code in (SQLITE_IOERR_NOT_LEADER, SQLITE_IOERR_LEADERSHIP_LOST)


def _pad8(n):
    return (8 - n % 8) % 8


def _text(s):
    b = s.encode("utf-8") + b"\0"
    return b + b"\0" * _pad8(len(b))


def _params(values):
    """The parameter tuple: count, one type byte each, padding, the values."""
    if not values:
        return b""
    types, body = bytearray([len(values)]), bytearray()
    for v in values:
        if v is None:
            types.append(T_NULL)
            body += struct.pack("<q", 0)
        elif isinstance(v, bool) or isinstance(v, int):
            types.append(T_INTEGER)
            body += struct.pack("<q", int(v))
        elif isinstance(v, float):
            types.append(T_FLOAT)
            body += struct.pack("<d", v)
        elif isinstance(v, str):
            types.append(T_TEXT)
            body += _text(v)
        elif isinstance(v, (bytes, bytearray)):
            types.append(T_BLOB)
            body += struct.pack("<Q", len(v)) + bytes(v) + b"\0" * _pad8(len(v))
        else:
            raise TypeError(f"cannot bind {type(v).__name__}")
    types += b"\0" * _pad8(len(types))
    return bytes(types + body)


class _Reader:
    def __init__(self, body):
        self.b, self.o = body, 0

    def u64(self):
        v = struct.unpack_from("<Q", self.b, self.o)[0]
        self.o += 8
        return v

    def i64(self):
        v = struct.unpack_from("<q", self.b, self.o)[0]
        self.o += 8
        return v

    def f64(self):
        v = struct.unpack_from("<d", self.b, self.o)[0]
        self.o += 8
        return v

    def text(self):
        end = self.b.index(b"\0", self.o)
        s = self.b[self.o:end].decode("utf-8")
        n = end + 1 - self.o
        self.o += n + _pad8(n)
        return s

    def blob(self):
        n = self.u64()
        v = bytes(self.b[self.o:self.o + n])
        self.o += n + _pad8(n)
        return v

    def peek_u64(self):
        return struct.unpack_from("<Q", self.b, self.o)[0]

    def done(self):
        return self.o >= len(self.b)


def _failure(body):
    """(code, message) of a FAILURE body. dqlite 1.11 leaves the column
    header of a query (count, names) in front of the failure when the first
    step fails (a SQL function's error, for one): skip it when the rest
    parses exactly as code and message."""
    r = _Reader(body)
    try:
        n = r.u64()
        if 0 < n < 4096:
            for _ in range(n):
                r.text()
            code, message = r.u64(), r.text()
            if r.done():
                return code, message
    except (ValueError, struct.error, UnicodeDecodeError, IndexError):
        pass
    r = _Reader(body)
    return r.u64(), r.text()


class Connection:
    """One connection to one node. Statements run only on the leader."""

    def __init__(self, address, timeout=5.0):
        host, port = address.rsplit(":", 1)
        self.address = address
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.sock.settimeout(timeout)
        self.sock.sendall(struct.pack("<Q", PROTOCOL_VERSION))
        self.db = None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _recv_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError(f"{self.address} closed the connection")
            buf += chunk
        return bytes(buf)

    def _request(self, mtype, body):
        assert len(body) % 8 == 0 and body
        self.sock.sendall(struct.pack("<IBBH", len(body) // 8, mtype, 0, 0) + body)
        return self._response()

    def _response(self):
        words, mtype, _, _ = struct.unpack("<IBBH", self._recv_exact(8))
        body = self._recv_exact(words * 8)
        if mtype == RES_FAILURE:
            raise DqliteError(*_failure(body))
        return mtype, _Reader(body)

    # -- cluster requests ------------------------------------------------
    def leader(self):
        """(id, address) of the leader this node knows; (0, '') if none."""
        _, r = self._request(REQ_LEADER, struct.pack("<Q", 0))
        node_id = r.u64()
        return node_id, r.text()

    def cluster(self):
        _, r = self._request(REQ_CLUSTER, struct.pack("<Q", 1))
        return [(r.u64(), r.text(), ROLE_NAMES.get(r.u64(), "?")) for _ in range(r.u64())]

    def add(self, node_id, address):
        self._request(REQ_ADD, struct.pack("<Q", node_id) + _text(address))

    def assign(self, node_id, role):
        self._request(REQ_ASSIGN, struct.pack("<QQ", node_id, ROLES[role]))

    def transfer(self, node_id):
        self._request(REQ_TRANSFER, struct.pack("<Q", node_id))

    # -- database requests -----------------------------------------------
    def open(self, name="anonauth"):
        _, r = self._request(REQ_OPEN, _text(name) + struct.pack("<Q", 0) + _text("volatile"))
        self.db = struct.unpack_from("<I", r.b, 0)[0]
        return self

    def execute(self, sql, params=()):
        """EXEC_SQL: the leader steps the statement once, then replicates
        whatever it committed. Returns (last_insert_id, rows_affected)."""
        _, r = self._request(REQ_EXEC_SQL, struct.pack("<Q", self.db) + _text(sql) + _params(params))
        return r.u64(), r.u64()

    def query(self, sql, params=()):
        """QUERY_SQL: the leader steps the statement to the end and returns
        its rows. Returns a list of tuples."""
        _, r = self._request(REQ_QUERY_SQL, struct.pack("<Q", self.db) + _text(sql) + _params(params))
        rows = []
        n_cols = r.u64()
        for _ in range(n_cols):
            r.text()
        while True:
            marker = r.peek_u64() if not r.done() else ROWS_DONE
            if marker == ROWS_DONE:
                return rows
            if marker == ROWS_PART:
                _, r = self._response()  # the server sends the next batch by itself
                continue
            header_len = (n_cols * 4 + 63) // 64 * 8
            header = r.b[r.o:r.o + header_len]
            r.o += header_len
            row = []
            for i in range(n_cols):
                t = (header[i // 2] >> (4 * (i % 2))) & 0x0F
                if t in (T_INTEGER, T_UNIXTIME, T_BOOLEAN):
                    row.append(r.i64())
                elif t == T_FLOAT:
                    row.append(r.f64())
                elif t in (T_TEXT, T_ISO8601):
                    row.append(r.text())
                elif t == T_BLOB:
                    row.append(r.blob())
                elif t == T_NULL:
                    r.u64()
                    row.append(None)
                else:
                    raise ValueError(f"unknown column type {t}")
            rows.append(tuple(row))

    def value(self, sql, params=()):
        """The first column of the first row of QUERY_SQL (None if no row)."""
        rows = self.query(sql, params)
        return rows[0][0] if rows else None

    def in_transaction(self, sql, params=()):
        """BEGIN, then sql as QUERY_SQL, then COMMIT: the pattern under which
        a write done by a SQL function is replicated before the caller sees
        its result. The error of a failed call is raised after the
        transaction ends: an anonauth error is committed (the failed call
        wrote nothing but what it keeps on purpose: rate-limit buckets,
        audit rows of rejections), any other error is rolled back."""
        self.execute("BEGIN")
        try:
            rows = self.query(sql, params)
        except DqliteError as e:
            end = "COMMIT" if e.message.startswith("anonauth: ") else "ROLLBACK"
            try:
                self.execute(end)
            except (DqliteError, OSError):
                pass
            raise
        except BaseException:
            try:
                self.execute("ROLLBACK")
            except (DqliteError, OSError):
                pass
            raise
        self.execute("COMMIT")
        return rows


def find_leader(servers, deadline=10.0, timeout=2.0):
    """Asks each server who leads until one names a leader that answers;
    returns an open Connection to it (database not opened yet)."""
    end = time.monotonic() + deadline
    last = None
    while True:
        for address in servers:
            try:
                with Connection(address, timeout=timeout) as c:
                    _, leader = c.leader()
                if not leader:
                    continue
                conn = Connection(leader, timeout=timeout)
                try:
                    _, again = conn.leader()
                except (OSError, DqliteError):
                    conn.close()
                    raise
                if again == leader:
                    return conn
                conn.close()
            except (OSError, DqliteError) as e:
                last = e
        if time.monotonic() >= end:
            raise TimeoutError(f"no leader among {','.join(servers)} ({last})")
        time.sleep(0.05)


def connect(servers, database="anonauth", deadline=10.0):
    """A Connection to the current leader with the database opened."""
    return find_leader(servers, deadline).open(database)


def join(servers, node_id, address, deadline=10.0):
    """Adds a node and makes it a voter; a node already in the cluster is left
    as it is, so the call can be repeated."""
    end = time.monotonic() + deadline
    while True:
        with find_leader(servers, max(0.1, end - time.monotonic())) as c:
            try:
                members = {m[0]: m for m in c.cluster()}
                if node_id not in members:
                    c.add(node_id, address)
                    members = {m[0]: m for m in c.cluster()}
                if members[node_id][2] != "voter":
                    c.assign(node_id, "voter")
                return
            except DqliteError as e:
                # The leader may be busy with another configuration change.
                if time.monotonic() >= end:
                    raise
                time.sleep(0.1)


def transfer(servers, node_id, deadline=15.0):
    """Makes node_id the leader, retrying while it cannot take over yet (a
    node that just restarted first catches up with the log)."""
    end = time.monotonic() + deadline
    while True:
        try:
            with find_leader(servers, max(0.1, end - time.monotonic())) as c:
                leader_id, _ = c.leader()
                if leader_id == node_id:
                    return
                c.transfer(node_id)
        except (DqliteError, OSError):
            if time.monotonic() >= end:
                raise
        time.sleep(0.1)


def _format(v):
    if v is None:
        return ""
    if isinstance(v, float) and math.isfinite(v) and v == int(v):
        return str(v)
    return str(v)


def main(argv):
    args = list(argv)
    servers = None
    if len(args) >= 2 and args[0] in ("-s", "--servers"):
        servers = args[1].split(",")
        args = args[2:]
    if not servers or not args:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    cmd, rest = args[0], args[1:]
    try:
        if cmd == "leader" and not rest:
            with find_leader(servers) as c:
                node_id, address = c.leader()
                print(f"{node_id}|{address}")
        elif cmd == "cluster" and not rest:
            with find_leader(servers) as c:
                for node_id, address, role in c.cluster():
                    print(f"{node_id}|{address}|{role}")
        elif cmd == "join" and len(rest) == 2:
            join(servers, int(rest[0]), rest[1])
        elif cmd == "transfer" and len(rest) == 1:
            transfer(servers, int(rest[0]))
        elif cmd in ("exec", "query", "tx") and len(rest) == 1:
            with connect(servers) as c:
                if cmd == "exec":
                    c.execute(rest[0])
                    return 0
                rows = c.query(rest[0]) if cmd == "query" else c.in_transaction(rest[0])
                for row in rows:
                    print("|".join(_format(v) for v in row))
        else:
            print(__doc__.strip(), file=sys.stderr)
            return 2
    except (DqliteError, OSError, TimeoutError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
