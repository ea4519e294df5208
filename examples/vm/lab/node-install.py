"""Install and (re)start the API node in this guest, in one go. Python 3 stdlib only.

Run by playbooks/tasks/node-install-restart.yml as `python3 -c <this file's text> ARGS`
through Ansible's command module (no shell), with a JSON bundle on stdin:

  {"files": {"node.py": "<base64>", "pidctl.py": "<base64>"}, "release": "..."}

Under TCG every Ansible module run in a guest costs seconds, so the node's whole update is one
module run instead of a copy per file plus a restart:

  1. stop the running node gracefully: pidctl.py stop (SIGTERM, wait for exit; no node or a
     stale pidfile is fine)
  2. install the files into --app-dir (each written only when it differs; temp file +
     rename) and the release config {"release": ...} (opaque data, JSON-encoded)
  3. start node.py --daemon, which returns once it listens and wrote its pidfile

The store (--db) is never touched here: node.py migrates it in place. Prints one JSON line
{"changed": bool, "installed": [...], "stop": "...", "start": "..."}; exits non-zero with
the failing step's output on error.
"""

import argparse
import base64
import json
import os
import subprocess
import sys


def write_if_changed(path, data, mode):
    try:
        with open(path, "rb") as fh:
            if fh.read() == data:
                os.chmod(path, mode)
                return False
    except FileNotFoundError:
        pass
    tmp = path + ".new"
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return True


def run(step, argv):
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write("%s failed (exit %d): %s%s\n"
                         % (step, done.returncode, done.stdout, done.stderr))
        sys.exit(1)
    return done.stdout.strip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--port", required=True)
    ap.add_argument("--app-dir", required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--pidfile", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--stop-timeout", default="30")
    args = ap.parse_args()
    bundle = json.load(sys.stdin)
    release = bundle["release"]
    if not isinstance(release, str):
        sys.exit("the release must be a string")

    os.makedirs(args.app_dir, mode=0o755, exist_ok=True)
    os.makedirs(os.path.dirname(args.db), mode=0o755, exist_ok=True)
    python = sys.executable
    pidctl = os.path.join(args.app_dir, "pidctl.py")
    node = os.path.join(args.app_dir, "node.py")
    config = os.path.join(args.app_dir, "config.json")

    stop = "not running"
    if os.path.exists(pidctl):
        stop = run("stop", [python, pidctl, "stop", args.pidfile, "--match", "node.py",
                            "--timeout", args.stop_timeout])
    installed = []
    for name, data in sorted(bundle["files"].items()):
        if write_if_changed(os.path.join(args.app_dir, name), base64.b64decode(data), 0o755):
            installed.append(name)
    if write_if_changed(config, json.dumps({"release": release}).encode(), 0o644):
        installed.append("config.json")
    start = run("start", [python, node, "--name", args.name, "--address", "0.0.0.0",
                          "--port", args.port, "--config", config, "--db", args.db,
                          "--pidfile", args.pidfile, "--log", args.log, "--daemon"])
    print(json.dumps({"changed": True, "installed": installed, "stop": stop,
                      "start": start}))


main()
