#!/usr/bin/env python3
"""Talk to the haproxy admin (stats) unix socket. Python 3 stdlib only.

Usage:
  haproxyctl.py SOCKET 'show stat'                 raw command, print reply
  haproxyctl.py SOCKET set-state BACKEND SERVER ready|drain|maint
  haproxyctl.py SOCKET status BACKEND [SERVER]     JSON of the servers' stats
  haproxyctl.py SOCKET wait-idle BACKEND SERVER [--timeout S]
        until the server has no current sessions (scur == 0, qcur == 0)
  haproxyctl.py SOCKET wait-status BACKEND SERVER STATUS [--timeout S]
        until the server's status is STATUS (e.g. UP, DOWN, MAINT, DRAIN)
  haproxyctl.py SOCKET wait-all-status BACKEND STATUS [--timeout S]
        until every server of BACKEND has status STATUS

Exit status: 0 on success, 1 on error/timeout, 2 on usage error.
Commands are passed as data on the socket, never through a shell.
"""

import argparse
import csv
import io
import json
import socket
import sys
import time

ERROR_MARKERS = ("Unknown command", "No such", "Require ", "Permission denied",
                 "not found", "Missing ", "unsupported", "Invalid ")


def send(sock_path, command, timeout=5.0):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(sock_path)
        s.sendall(command.strip().encode() + b"\n")
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        s.close()
    return b"".join(chunks).decode("utf-8", "replace")


def looks_like_error(reply):
    return any(m in reply for m in ERROR_MARKERS)


def servers(sock_path, backend):
    """Rows of 'show stat' for the real servers of backend."""
    text = send(sock_path, "show stat")
    if not text.startswith("# "):
        raise RuntimeError("unexpected 'show stat' reply: %r" % text[:200])
    rows = csv.DictReader(io.StringIO(text[2:]))
    out = {}
    for row in rows:
        if row.get("pxname") != backend:
            continue
        if row.get("svname") in ("FRONTEND", "BACKEND"):
            continue
        out[row["svname"]] = row
    return out


def summary(row):
    keys = ("status", "scur", "qcur", "stot", "weight", "check_status",
            "lastchg", "hrsp_5xx", "econ", "eresp", "wretr", "wredis")
    return {k: row.get(k) for k in keys}


def poll(desc, timeout, interval, probe):
    """Call probe() until it returns (True, info); raise on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            ok, last = probe()
            if ok:
                return last
        except (OSError, RuntimeError) as exc:
            last = "error: %s" % exc
        if time.monotonic() >= deadline:
            raise TimeoutError("timed out after %.1fs waiting for %s "
                               "(last seen: %s)" % (timeout, desc, last))
        time.sleep(interval)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    modes = ("set-state", "status", "wait-idle", "wait-status",
             "wait-all-status")
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    sock_path = argv[0]
    if argv[1] not in modes:
        reply = send(sock_path, " ".join(argv[1:]))
        sys.stdout.write(reply)
        return 1 if looks_like_error(reply) else 0

    ap = argparse.ArgumentParser(prog="haproxyctl.py SOCKET")
    sub = ap.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("set-state")
    p.add_argument("backend")
    p.add_argument("server")
    p.add_argument("state", choices=("ready", "drain", "maint"))
    p = sub.add_parser("status")
    p.add_argument("backend")
    p.add_argument("server", nargs="?")
    for name in ("wait-idle", "wait-status", "wait-all-status"):
        p = sub.add_parser(name)
        p.add_argument("backend")
        if name != "wait-all-status":
            p.add_argument("server")
        if name != "wait-idle":
            p.add_argument("status")
        p.add_argument("--timeout", type=float, default=10.0)
        p.add_argument("--interval", type=float, default=0.1)
    args = ap.parse_args(argv[1:])

    try:
        if args.mode == "set-state":
            cmd = "set server %s/%s state %s" % (args.backend, args.server,
                                                 args.state)
            reply = send(sock_path, cmd).strip()
            if reply:
                print("haproxy refused %r: %s" % (cmd, reply),
                      file=sys.stderr)
                return 1
            print("%s/%s -> %s" % (args.backend, args.server, args.state))
            return 0

        if args.mode == "status":
            rows = servers(sock_path, args.backend)
            if args.server:
                if args.server not in rows:
                    print("no server %s/%s" % (args.backend, args.server),
                          file=sys.stderr)
                    return 1
                print(json.dumps(summary(rows[args.server])))
            else:
                print(json.dumps({k: summary(v) for k, v in rows.items()}))
            return 0

        if args.mode == "wait-all-status":
            def probe():
                rows = servers(sock_path, args.backend)
                got = {k: v.get("status") for k, v in rows.items()}
                ok = bool(rows) and all(s == args.status
                                        for s in got.values())
                return ok, got
            got = poll("all servers of %s to be %s" % (args.backend,
                                                       args.status),
                       args.timeout, args.interval, probe)
            print(json.dumps(got))
            return 0

        def probe():
            rows = servers(sock_path, args.backend)
            row = rows.get(args.server)
            if row is None:
                raise RuntimeError("no server %s/%s" % (args.backend,
                                                        args.server))
            if args.mode == "wait-idle":
                ok = row.get("scur") == "0" and row.get("qcur") in ("0", "")
            else:
                ok = row.get("status") == args.status
            return ok, summary(row)
        what = ("%s/%s to be idle" % (args.backend, args.server)
                if args.mode == "wait-idle" else
                "%s/%s to be %s" % (args.backend, args.server, args.status))
        info = poll(what, args.timeout, args.interval, probe)
        print(json.dumps(info))
        return 0
    except (OSError, RuntimeError, TimeoutError) as exc:
        print("haproxyctl: %s" % exc, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
