#!/usr/bin/env python3
"""One virtualenv per (service, release), cached by content: `osvenv.py SERVICE RELEASE`.

RELEASE is a series of releases.yml (`2026.2`) or a PyPI version (`30.0.0`). Prints the
venv's path. The cache key is a hash of everything that decides what gets installed: the
Python version, the requirements and the series' `libraries_before` date. A warm run installs
nothing. The cache folder is $ROLLCI_OPENSTACK_CACHE, else /var/cache/rollci/openstack (like
the guest image's, it outlives workspaces on purpose: a venv is not relocatable, so it is
built in place under a lock and marked complete last). After a build, the cache drops
half-built venvs and those unused for $ROLLCI_OPENSTACK_CACHE_DAYS days (default 30).

Installs go through uv (itself from PyPI, in a venv of this cache): it is several times
faster than pip and can stand in for a series' upper constraints (`--exclude-newer`).

`osvenv.py --tool NAME REQUIREMENT...` caches a tool's venv (tempest, rally) the same way.
"""

import ast
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.environ.get("ROLLCI_OPENSTACK_CACHE") or "/var/cache/rollci/openstack"
UV = "uv>=0.9,<1"
# A venv unused for this many days is pruned after the next build.
KEEP_DAYS = float(os.environ.get("ROLLCI_OPENSTACK_CACHE_DAYS") or 30)
# A date no release reaches: what is exempt from a series' library cut-off.
NO_CUTOFF = "2100-01-01"


def releases():
    """releases.yml as {"releases": {series: {key: value}}, "extras", "packages"}.

    The file is flat enough to read without PyYAML on the agent's python3."""
    out, section, series = {"releases": {}, "extras": [], "constraints": [], "packages": {}}, None, None
    for line in open(os.path.join(HERE, "..", "releases.yml")):
        text = line.split("#", 1)[0].rstrip()
        if not text:
            continue
        key, _, value = text.strip().lstrip("- ").partition(":")
        key, value = key.strip(), value.strip().strip('"')
        if not text.startswith(" "):
            section = key
            if value:
                out[section] = ast.literal_eval(text.partition(":")[2].strip())
        elif section == "releases" and key == "series":
            series = out["releases"].setdefault(value, {})
        elif section == "releases":
            series[key] = value
        else:
            out[section][key] = value
    return out


def plan(service, release):
    """(requirements, uv options) of SERVICE at RELEASE."""
    data = releases()
    package = data["packages"].get(service)
    if package is None:
        sys.exit(f"osvenv.py: unknown service `{service}` (releases.yml packages: "
                 f"{', '.join(data['packages'])})")
    series = data["releases"].get(release, {})
    version = series.get(service, release)
    reqs = [f"{package}=={version}", *data["extras"]]
    options = []
    if "libraries_before" in series:
        options += ["--exclude-newer", series["libraries_before"]]
        for req in list(reqs):
            name = req.split("=")[0].split(">")[0].split("<")[0].strip()
            options += ["--exclude-newer-package", f"{name}={NO_CUTOFF}"]
    return reqs + data["constraints"], options


def python_version():
    return ".".join(map(str, sys.version_info[:3]))


def build(path, steps):
    """Runs `steps(path)` into a fresh `path` under a lock, unless it is complete already.

    Every use touches `.complete`, so its mtime says when the venv was last used (prune)."""
    done = os.path.join(path, ".complete")
    if os.path.exists(done):
        os.utime(done)
        return path
    os.makedirs(CACHE, exist_ok=True)
    with open(path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(done):
            return path
        shutil.rmtree(path, ignore_errors=True)
        started = time.monotonic()
        try:
            steps(path)
        except subprocess.CalledProcessError as e:
            shutil.rmtree(path, ignore_errors=True)
            sys.exit(f"osvenv.py: `{' '.join(e.cmd)}` failed ({e.returncode})")
        with open(done, "w") as f:
            json.dump({"seconds": round(time.monotonic() - started, 1)}, f)
    prune(keep=path)
    return path


def prune(keep):
    """Removes what a cache that only grows would keep for ever: half-built venvs nobody is
    building (an install killed midway) and venvs unused for KEEP_DAYS days (releases.yml
    moved on). Runs only after a build, so a warm run pays nothing. An entry is removed
    under its own lock, never while another process builds it."""
    cutoff = time.time() - KEEP_DAYS * 86400
    for name in sorted(os.listdir(CACHE)):
        path = os.path.join(CACHE, name)
        if path == keep or name in ("uv-cache", "tmp") or not os.path.isdir(path):
            continue
        done = os.path.join(path, ".complete")
        with open(path + ".lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            try:
                stale = not os.path.exists(done) or os.path.getmtime(done) < cutoff
            except FileNotFoundError:
                stale = True
            if stale:
                print(f"osvenv.py: pruning {path}", file=sys.stderr)
                shutil.rmtree(path, ignore_errors=True)


def uv():
    key = hashlib.sha256(json.dumps([python_version(), UV]).encode()).hexdigest()[:16]

    def steps(path):
        subprocess.run([sys.executable, "-m", "venv", path], check=True)
        subprocess.run([os.path.join(path, "bin", "pip"), "install", "--quiet",
                        "--disable-pip-version-check", UV], check=True,
                       stdin=subprocess.DEVNULL)

    return os.path.join(build(os.path.join(CACHE, f"uv-{key}"), steps), "bin", "uv")


def ensure(name, reqs, options=()):
    key = hashlib.sha256(json.dumps([python_version(), reqs, list(options)]).encode())
    path = os.path.join(CACHE, f"{name}-{key.hexdigest()[:16]}")
    tool = uv()
    # The platform's certificate store, as pip uses it (PIP_CERT, /etc/ssl/certs): uv's own
    # roots refuse a registry behind a TLS-inspecting proxy ("invalid peer certificate:
    # UnknownIssuer", measured with uv 0.13.9 on 2026-12-06; older uv read SSL_CERT_FILE).
    # UV_NATIVE_TLS is the older name of the same switch.
    # TMPDIR: uv leaves its build locks (`uv-setuptools-*.lock`) in the temp folder; they
    # stay in the cache's, not in /tmp.
    tmp = os.path.join(CACHE, "tmp")
    os.makedirs(tmp, exist_ok=True)
    env = {**os.environ, "UV_CACHE_DIR": os.path.join(CACHE, "uv-cache"),
           "UV_NO_PROGRESS": "1", "UV_SYSTEM_CERTS": "1", "UV_NATIVE_TLS": "1", "TMPDIR": tmp}

    def steps(path):
        subprocess.run([tool, "venv", "--quiet", "--seed", "--python", sys.executable, path],
                       check=True, env=env, stdin=subprocess.DEVNULL)
        subprocess.run([tool, "pip", "install", "--quiet", "--python",
                        os.path.join(path, "bin", "python"), *options, *reqs],
                       check=True, env=env, stdin=subprocess.DEVNULL)

    return build(path, steps)


def main(argv):
    if len(argv) >= 3 and argv[0] == "--tool":
        print(ensure(argv[1], argv[2:]))
    elif len(argv) == 2:
        print(ensure(argv[0], *plan(*argv)))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
