#!/usr/bin/env python3
"""The fault matrix's actions (`tests/it/faults/`): `act.py WHAT [--fail never|first|always]`.

WHAT is `ok` (print the whole environment, as a careless playbook's `env` task would:
rollci must mask the secrets in it), `start` (a TCP server on node1's address, daemonized, its pidfile
in the lab folder where the local provider finds it), `restart` (stop that server, start a new
one) or `hang` (say `ready`, then sleep until killed: a playbook caught mid-run).
`--fail first` fails the first attempt of this action in this lab (a marker file in the lab
folder), `--fail always` every attempt. Reads what rollci gives a command action:
ROLLCI_LAB_DIR, ROLLCI_HOST_NODE1 (address:port), ROLLCI_ACTION is not needed.
"""

import argparse
import os
import signal
import socket
import sys
import time


def pidfile():
    return os.path.join(os.environ["ROLLCI_LAB_DIR"], "nodes", "node1", "server.pid")


def serve(address, port):
    """The daemon: accepts and closes connections until SIGTERM."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address, port))
    sock.listen(16)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    with open(pidfile() + ".tmp", "w") as f:
        f.write(f"{os.getpid()}\n")
    os.rename(pidfile() + ".tmp", pidfile())
    while True:
        conn, _ = sock.accept()
        conn.close()


def start():
    address, port = os.environ["ROLLCI_HOST_NODE1"].rsplit(":", 1)
    os.makedirs(os.path.dirname(pidfile()), exist_ok=True)
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            serve(address, int(port))
        os._exit(0)
    os.wait()
    deadline = time.time() + 10
    while not os.path.exists(pidfile()):
        if time.time() > deadline:
            sys.exit("act.py: the server wrote no pidfile in 10 s")
        time.sleep(0.02)


def stop():
    try:
        pid = int(open(pidfile()).read())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    while os.path.exists(f"/proc/{pid}"):
        time.sleep(0.02)
    os.remove(pidfile())


def failing(mode, what):
    if mode == "always":
        return True
    marker = os.path.join(os.environ["ROLLCI_LAB_DIR"], f".failed-once-{what}")
    if mode == "first" and not os.path.exists(marker):
        open(marker, "w").close()
        return True
    return False


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["ok", "start", "restart", "hang"])
    parser.add_argument("--fail", choices=["never", "first", "always"], default="never")
    args = parser.parse_args()
    if failing(args.fail, args.what):
        sys.exit(f"act.py {args.what}: failing on purpose (--fail {args.fail})")
    if args.what == "ok":
        for key, value in sorted(os.environ.items()):
            print(f"{key}={value}")
    elif args.what == "start":
        start()
    elif args.what == "restart":
        stop()
        start()
    elif args.what == "hang":
        print("ready", flush=True)
        time.sleep(600)


if __name__ == "__main__":
    main()
