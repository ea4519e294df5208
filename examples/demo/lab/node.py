#!/usr/bin/env python3
"""rollci demo lab: one API node of a tiny versioned control-plane service.

Python 3 standard library only. Several node processes share one SQLite
database (like API workers behind a load balancer sharing one DB).

Endpoints (all responses are JSON with Content-Length, one request per
connection so haproxy can drain a server cleanly):

  GET    /healthz          -> 200 {"status": "ok", ...}
  GET    /version          -> 200 {"release": ..., "node": ...}
  POST   /records          -> 201 record (body {"content": ...}, id generated)
  PUT    /records/<id>     -> 201 (created) / 200 (replaced) record
  GET    /records/<id>     -> 200 record / 404
  GET    /records          -> 200 {"records": [...], "count": n}
  DELETE /records/<id>     -> 204 / 404
  GET    /sleep/<ms>       -> 200 after ms milliseconds (max 10000), to
                              show that a graceful stop finishes in-flight
                              requests

The release string is read from the JSON config file {"release": "..."}
and is treated as opaque data: it is never passed to a shell.

With --daemon the process double-forks, detaches (setsid), redirects
stdout/stderr to the log file and writes the pidfile (atomically) only
once its socket is bound and listening; the launching process exits 0
only after that, or non-zero with the reason if start-up failed.
SIGTERM/SIGINT: stop accepting, finish in-flight requests, remove the
pidfile, exit 0.
"""

import argparse
import datetime
import http.server
import json
import os
import signal
import sqlite3
import sys
import threading
import time
import urllib.parse
import uuid

SCHEMA_VERSION = 2
MAX_BODY = 1024 * 1024
DB_TIMEOUT = 5.0


# ---------------------------------------------------------------- helpers

class Log:
    """Append-only, thread-safe, timestamped log file."""

    def __init__(self, path, name):
        self.name = name
        self.lock = threading.Lock()
        self.fh = open(path, "a", buffering=1, encoding="utf-8",
                       errors="backslashreplace")

    def write(self, msg):
        ts = datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="milliseconds")
        line = "%s %s[%d] %s\n" % (ts, self.name, os.getpid(), msg)
        with self.lock:
            try:
                self.fh.write(line)
            except (OSError, ValueError):
                pass


def read_release(path):
    with open(path, "r", encoding="utf-8") as fh:
        cfg = json.load(fh)
    if not isinstance(cfg, dict) or "release" not in cfg:
        raise ValueError("config %s: expected a JSON object with a "
                         "'release' key" % path)
    release = cfg["release"]
    if not isinstance(release, str):
        raise ValueError("config %s: 'release' must be a string" % path)
    return release


def pid_is_node(pid):
    """True if pid is alive and looks like a node.py process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as fh:
            return b"node.py" in fh.read()
    except OSError:
        return True


def read_pidfile(path):
    try:
        with open(path, "r", encoding="ascii") as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def write_pidfile(path, pid):
    tmp = "%s.tmp.%d" % (path, pid)
    with open(tmp, "w", encoding="ascii") as fh:
        fh.write("%d\n" % pid)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def remove_pidfile(path, pid):
    if read_pidfile(path) == pid:
        try:
            os.unlink(path)
        except OSError:
            pass


# --------------------------------------------------------------- database

def connect(db_path):
    conn = sqlite3.connect(db_path, timeout=DB_TIMEOUT,
                           isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = %d" % int(DB_TIMEOUT * 1000))
    conn.row_factory = sqlite3.Row
    return conn


def migrate(db_path, release, log):
    """Idempotent, expand-only schema migration.

    v1: records(id, content, created_release, created_at)
    v2: + updated_release, updated_at (nullable, so a v1 node keeps working)
    Safe to run concurrently from several nodes (BEGIN IMMEDIATE + retry).
    """
    deadline = time.monotonic() + 30
    while True:
        conn = connect(db_path)
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS records ("
                " id TEXT PRIMARY KEY,"
                " content TEXT NOT NULL,"
                " created_release TEXT NOT NULL,"
                " created_at TEXT NOT NULL)")
            cols = {r["name"] for r in
                    conn.execute("PRAGMA table_info(records)")}
            added = []
            for col in ("updated_release", "updated_at"):
                if col not in cols:
                    conn.execute("ALTER TABLE records ADD COLUMN %s TEXT"
                                 % col)
                    added.append(col)
            current = conn.execute("PRAGMA user_version").fetchone()[0]
            if current < SCHEMA_VERSION:
                conn.execute("PRAGMA user_version = %d" % SCHEMA_VERSION)
            conn.execute("COMMIT")
            log.write("migration ok: journal_mode=%s schema=%d added=%s "
                      "release=%s" % (mode, max(current, SCHEMA_VERSION),
                                      added or "none", json.dumps(release)))
            return
        except sqlite3.OperationalError as exc:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            if time.monotonic() > deadline:
                raise
            log.write("migration retry: %s" % exc)
            time.sleep(0.1)
        finally:
            conn.close()


def row_to_record(row):
    rec = {
        "id": row["id"],
        "content": json.loads(row["content"]),
        "created_release": row["created_release"],
        "created_at": row["created_at"],
    }
    keys = row.keys()
    for col in ("updated_release", "updated_at"):
        if col in keys:
            rec[col] = row[col]
    return rec


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="milliseconds")


# ------------------------------------------------------------------ HTTP

class Handler(http.server.BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so a drained server really
    # becomes idle and a stopped node leaves no half-used keep-alive
    # connections behind in haproxy.
    protocol_version = "HTTP/1.0"
    timeout = 10

    def version_string(self):
        return "rollci-demo-node"

    # -- plumbing
    def log_message(self, fmt, *args):
        self.server.log.write("%s %s" % (self.client_address[0],
                                         fmt % args))

    def send_json(self, status, obj=None):
        body = b"" if obj is None else (json.dumps(obj) + "\n").encode()
        self.send_response(status)
        if obj is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.send_header("X-Rollci-Node", self.server.node_name)
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)
        self.close_connection = True

    def send_error(self, code, message=None, explain=None):
        # Used by BaseHTTPRequestHandler for malformed requests: keep JSON.
        try:
            self.send_json(code, {"error": message or
                                  self.responses.get(code, ("error",))[0]})
        except OSError:
            pass

    def read_json_body(self):
        length = self.headers.get("Content-Length")
        if length is None:
            raise ValueError("Content-Length required")
        length = int(length)
        if length < 0 or length > MAX_BODY:
            raise ValueError("body too large")
        raw = self.rfile.read(length)
        data = json.loads(raw.decode("utf-8") if raw else "null")
        if not isinstance(data, dict) or "content" not in data:
            raise ValueError('body must be a JSON object {"content": ...}')
        return data["content"]

    def route(self):
        parsed = urllib.parse.urlsplit(self.path)
        parts = [urllib.parse.unquote(p) for p in parsed.path.split("/")
                 if p != ""]
        return parts, urllib.parse.parse_qs(parsed.query)

    def dispatch(self, method):
        try:
            parts, query = self.route()
            if parts == ["healthz"] and method in ("GET", "HEAD"):
                return self.send_json(200, {"status": "ok",
                                            "node": self.server.node_name})
            if parts == ["version"] and method in ("GET", "HEAD"):
                return self.send_json(200, {"release": self.server.release,
                                            "node": self.server.node_name})
            if (len(parts) == 2 and parts[0] == "sleep"
                    and method in ("GET", "HEAD")):
                # slow request, to show that a graceful stop finishes
                # in-flight requests: GET /sleep/<ms> (at most 10000)
                ms = max(0, min(int(parts[1]), 10000))
                time.sleep(ms / 1000.0)
                return self.send_json(200, {"slept_ms": ms,
                                            "node": self.server.node_name,
                                            "release": self.server.release})
            if parts and parts[0] == "records":
                if len(parts) == 1:
                    if method == "GET":
                        return self.list_records(query)
                    if method == "POST":
                        return self.put_record(None)
                    return self.send_json(405, {"error": "method not allowed"})
                if len(parts) == 2:
                    rid = parts[1]
                    if len(rid) > 200:
                        return self.send_json(400, {"error": "id too long"})
                    if method == "GET":
                        return self.get_record(rid)
                    if method == "PUT":
                        return self.put_record(rid)
                    if method == "DELETE":
                        return self.delete_record(rid)
                    return self.send_json(405, {"error": "method not allowed"})
            return self.send_json(404, {"error": "not found"})
        except ValueError as exc:
            return self.send_json(400, {"error": str(exc)})
        except sqlite3.Error as exc:
            self.server.log.write("db error: %r" % exc)
            return self.send_json(503, {"error": "database error: %s" % exc})

    do_GET = lambda self: self.dispatch("GET")          # noqa: E731
    do_HEAD = lambda self: self.dispatch("HEAD")        # noqa: E731
    do_POST = lambda self: self.dispatch("POST")        # noqa: E731
    do_PUT = lambda self: self.dispatch("PUT")          # noqa: E731
    do_DELETE = lambda self: self.dispatch("DELETE")    # noqa: E731

    # -- resources
    def list_records(self, query):
        try:
            limit = int(query.get("limit", ["1000"])[0])
        except ValueError:
            raise ValueError("limit must be an integer")
        limit = max(0, min(limit, 10000))
        conn = connect(self.server.db_path)
        try:
            rows = conn.execute("SELECT * FROM records ORDER BY created_at, id"
                                " LIMIT ?", (limit,)).fetchall()
        finally:
            conn.close()
        recs = [row_to_record(r) for r in rows]
        return self.send_json(200, {"records": recs, "count": len(recs)})

    def get_record(self, rid):
        conn = connect(self.server.db_path)
        try:
            row = conn.execute("SELECT * FROM records WHERE id = ?",
                               (rid,)).fetchone()
        finally:
            conn.close()
        if row is None:
            return self.send_json(404, {"error": "no such record",
                                        "id": rid})
        return self.send_json(200, row_to_record(row))

    def put_record(self, rid):
        content = json.dumps(self.read_json_body())
        release = self.server.release
        ts = now_iso()
        conn = connect(self.server.db_path)
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if rid is None:
                    rid = uuid.uuid4().hex
                    exists = False
                else:
                    exists = conn.execute(
                        "SELECT 1 FROM records WHERE id = ?",
                        (rid,)).fetchone() is not None
                if exists:
                    conn.execute(
                        "UPDATE records SET content = ?, updated_release = ?,"
                        " updated_at = ? WHERE id = ?",
                        (content, release, ts, rid))
                else:
                    conn.execute(
                        "INSERT INTO records (id, content, created_release,"
                        " created_at) VALUES (?, ?, ?, ?)",
                        (rid, content, release, ts))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            row = conn.execute("SELECT * FROM records WHERE id = ?",
                               (rid,)).fetchone()
        finally:
            conn.close()
        return self.send_json(200 if exists else 201, row_to_record(row))

    def delete_record(self, rid):
        conn = connect(self.server.db_path)
        try:
            cur = conn.execute("DELETE FROM records WHERE id = ?", (rid,))
            deleted = cur.rowcount
        finally:
            conn.close()
        if not deleted:
            return self.send_json(404, {"error": "no such record", "id": rid})
        return self.send_json(204)


class Server(http.server.ThreadingHTTPServer):
    # Non-daemon threads + block_on_close: server_close() waits for
    # in-flight requests to finish (graceful stop).
    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True
    request_queue_size = 128


# ------------------------------------------------------------- lifecycle

def daemonize(log_path):
    """Double fork. Returns in the grandchild with a pipe write end for
    reporting readiness; the original process waits on the pipe and exits."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid > 0:
        # Original process: wait for the grandchild's verdict.
        os.close(wfd)
        chunks = []
        while True:
            chunk = os.read(rfd, 4096)
            if not chunk:
                break
            chunks.append(chunk)
        os.waitpid(pid, 0)
        msg = b"".join(chunks).decode("utf-8", "replace")
        if msg.startswith("ok "):
            print("node started, pid %s" % msg[3:].strip())
            os._exit(0)
        sys.stderr.write("node failed to start: %s\n" %
                         (msg or "no report (see log %s)" % log_path))
        os._exit(1)
    os.close(rfd)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    os.chdir("/")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    logfd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(logfd, 1)
    os.dup2(logfd, 2)
    os.close(logfd)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    return wfd


def main(argv=None):
    ap = argparse.ArgumentParser(description="rollci demo API node")
    ap.add_argument("--name", required=True)
    ap.add_argument("--address", required=True)
    ap.add_argument("--port", required=True, type=int)
    ap.add_argument("--config", required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--pidfile", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--daemon", action="store_true")
    args = ap.parse_args(argv)
    for attr in ("config", "db", "pidfile", "log"):
        setattr(args, attr, os.path.abspath(getattr(args, attr)))

    report_fd = None

    def fail(msg):
        if report_fd is not None:
            os.write(report_fd, msg.encode("utf-8", "replace"))
            os.close(report_fd)
        sys.stderr.write("node %s: %s\n" % (args.name, msg))
        sys.exit(1)

    # Checks that can fail fast, before detaching.
    try:
        release = read_release(args.config)
    except (OSError, ValueError) as exc:
        sys.stderr.write("node %s: bad config: %s\n" % (args.name, exc))
        return 1
    old = read_pidfile(args.pidfile)
    if old is not None and old != os.getpid() and pid_is_node(old):
        sys.stderr.write("node %s: already running (pid %d, %s)\n"
                         % (args.name, old, args.pidfile))
        return 1

    if args.daemon:
        report_fd = daemonize(args.log)

    log = Log(args.log, args.name)
    try:
        migrate(args.db, release, log)
        httpd = Server((args.address, args.port), Handler)
    except Exception as exc:  # noqa: BLE001 - report any start-up failure
        log.write("start-up failed: %r" % exc)
        fail("start-up failed: %r" % exc)
    httpd.log = log
    httpd.node_name = args.name
    httpd.release = release
    httpd.db_path = args.db

    stopping = threading.Event()

    def on_signal(signum, _frame):
        if stopping.is_set():
            return
        stopping.set()
        log.write("signal %d: graceful shutdown" % signum)
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

    pid = os.getpid()
    write_pidfile(args.pidfile, pid)
    log.write("listening on %s:%d release=%s db=%s"
              % (args.address, args.port, json.dumps(release), args.db))
    if report_fd is not None:
        os.write(report_fd, ("ok %d" % pid).encode())
        os.close(report_fd)
        report_fd = None
    try:
        httpd.serve_forever(poll_interval=0.1)
    finally:
        httpd.server_close()  # closes the listener, joins in-flight requests
        remove_pidfile(args.pidfile, pid)
        log.write("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
