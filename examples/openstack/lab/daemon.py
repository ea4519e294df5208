#!/usr/bin/env python3
"""Start and stop the lab's daemons (MariaDB, memcached, API nodes) by pidfile. Stdlib only.

  daemon.py start PIDFILE LOG [--ready tcp:HOST:PORT | http:URL]... [--timeout S]
            [--env K=V]... [--cwd DIR] -- ARGV...
      Runs ARGV detached (its own session, stdin /dev/null, stdout+stderr appended to LOG),
      writes its pid to PIDFILE (the local provider adopts every *.pid of the lab folder into
      the journal, so cleanup stops it whatever happens next), and returns once every
      --ready check passes: a TCP connect, or an HTTP answer of any status below 500.
      Exits 1 with LOG's tail when the process dies or is not ready in time (it is then
      stopped again). The argv reaches the process as it is: no shell.
  daemon.py stop PIDFILE [--timeout S]
      SIGTERM, wait for the exit (SIGKILL after the timeout), remove PIDFILE. A missing or
      stale pidfile is no error.
  daemon.py wait-gone tcp:HOST:PORT [--timeout S]
      Waits until nothing listens there (a restarted node must not find its port taken).
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def read_pid(path):
    try:
        with open(path, encoding="ascii") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2:][:1] not in (b"Z", b"X")


def ready(check):
    kind, _, target = check.partition(":")
    if kind == "tcp":
        host, _, port = target.rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=2).close()
            return True
        except OSError:
            return False
    if kind == "http":
        try:
            with OPENER.open(target, timeout=5) as r:
                return r.status < 500
        except urllib.error.HTTPError as e:
            return e.code < 500
        except (urllib.error.URLError, OSError):
            return False
    sys.exit(f"daemon.py: unknown readiness check `{check}` (tcp:HOST:PORT or http:URL)")


def tail(log):
    try:
        with open(log, errors="replace") as f:
            return f.read()[-3000:]
    except OSError:
        return ""


def start(args):
    env = dict(os.environ)
    for pair in args.env:
        key, _, value = pair.partition("=")
        env[key] = value
    os.makedirs(os.path.dirname(os.path.abspath(args.pidfile)), exist_ok=True)
    with open(args.log, "ab") as log:
        proc = subprocess.Popen(args.argv, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=env, cwd=args.cwd,
                                start_new_session=True)
    with open(args.pidfile + ".tmp", "w") as f:
        f.write(f"{proc.pid}\n")
    os.replace(args.pidfile + ".tmp", args.pidfile)
    deadline = time.monotonic() + args.timeout
    pending = list(args.ready)
    while pending:
        if proc.poll() is not None:
            fail(args, f"`{args.argv[0]}` exited with {proc.returncode} before it was ready")
        pending = [c for c in pending if not ready(c)]
        if pending and time.monotonic() > deadline:
            stop_pid(proc.pid, 10)
            fail(args, f"`{args.argv[0]}` not ready within {args.timeout:g}s: {pending}")
        if pending:
            time.sleep(0.1)


def fail(args, message):
    try:
        os.unlink(args.pidfile)
    except OSError:
        pass
    sys.exit(f"daemon.py: {message}\n--- {args.log} (tail)\n{tail(args.log)}")


def stop_pid(pid, timeout):
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)
        while alive(pid):
            time.sleep(0.05)


def stop(args):
    pid = read_pid(args.pidfile)
    if pid is not None and alive(pid):
        stop_pid(pid, args.timeout)
    try:
        os.unlink(args.pidfile)
    except FileNotFoundError:
        pass


def wait_gone(args):
    deadline = time.monotonic() + args.timeout
    while ready(args.check):
        if time.monotonic() > deadline:
            sys.exit(f"daemon.py: {args.check} still answers after {args.timeout:g}s")
        time.sleep(0.05)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("start")
    s.add_argument("pidfile")
    s.add_argument("log")
    s.add_argument("--ready", action="append", default=[])
    s.add_argument("--timeout", type=float, default=120)
    s.add_argument("--env", action="append", default=[])
    s.add_argument("--cwd")
    s.add_argument("argv", nargs="+")
    s = sub.add_parser("stop")
    s.add_argument("pidfile")
    s.add_argument("--timeout", type=float, default=30)
    s = sub.add_parser("wait-gone")
    s.add_argument("check")
    s.add_argument("--timeout", type=float, default=30)
    args = ap.parse_args()
    {"start": start, "stop": stop, "wait-gone": wait_gone}[args.cmd](args)


if __name__ == "__main__":
    main()
