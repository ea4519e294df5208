#!/usr/bin/env python3
"""Stop / inspect a lab process through its pidfile. Python 3 stdlib only.

Usage:
  pidctl.py stop PIDFILE [--match SUBSTR] [--timeout S] [--kill-after]
      SIGTERM the process, wait until it has exited (zombies count as
      exited), remove the pidfile. A missing pidfile or a stale one (process
      gone, or its command line does not contain SUBSTR) is not an error.
      With --kill-after, SIGKILL when the graceful timeout expires.
  pidctl.py status PIDFILE [--match SUBSTR]
      print {"running": bool, "pid": n}; exit 0 whether running or not.

Exit status 0 on success, 1 if the process did not exit in time.
"""

import argparse
import json
import os
import signal
import sys
import time


def read_pid(path):
    try:
        with open(path, "r", encoding="ascii") as fh:
            return int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def alive(pid, match=None):
    """True if pid is a live (non-zombie) process whose cmdline has match."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as fh:
            stat = fh.read()
        state = stat[stat.rindex(b")") + 2:][:1]
        if state in (b"Z", b"X"):
            return False
        if match is not None:
            with open("/proc/%d/cmdline" % pid, "rb") as fh:
                if match.encode() not in fh.read():
                    return False
        return True
    except (OSError, ValueError):
        return False


def remove(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=("stop", "status"))
    ap.add_argument("pidfile")
    ap.add_argument("--match", default=None,
                    help="substring the process command line must contain")
    ap.add_argument("--timeout", type=float, default=20.0)
    ap.add_argument("--kill-after", action="store_true")
    args = ap.parse_args(argv)

    pid = read_pid(args.pidfile)
    running = pid is not None and alive(pid, args.match)
    if args.mode == "status":
        print(json.dumps({"running": running, "pid": pid}))
        return 0

    if not running:
        if pid is not None or os.path.exists(args.pidfile):
            remove(args.pidfile)
            print("not running (removed stale pidfile, pid %s)" % pid)
        else:
            print("not running")
        return 0

    start = time.monotonic()
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = start + args.timeout
    while alive(pid, args.match):
        if time.monotonic() >= deadline:
            if not args.kill_after:
                print("pid %d did not exit within %.1fs" % (pid, args.timeout),
                      file=sys.stderr)
                return 1
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            time.sleep(0.2)
            print("pid %d killed with SIGKILL after %.1fs"
                  % (pid, args.timeout))
            break
        time.sleep(0.05)
    else:
        print("pid %d stopped in %.2fs" % (pid, time.monotonic() - start))
    # The process removes its own pidfile on clean exit; make sure.
    if read_pid(args.pidfile) == pid:
        remove(args.pidfile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
