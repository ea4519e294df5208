#!/usr/bin/env python3
"""One virtualenv per (service, release), cached by content: `osvenv.py SERVICE RELEASE`.

RELEASE is a series of releases.yml (`2026.2`) or a PyPI version (`30.0.0`).

Prints the venv's path. The cache key is a hash of everything that decides what pip
installs: the Python version, the service's PyPI distribution and version, and the extras of
releases.yml. A warm run installs nothing. The cache folder is $ROLLCI_OPENSTACK_CACHE, else
/var/cache/rollci/openstack (like the guest image's, it outlives workspaces on purpose: a
venv is not relocatable, so it is built in place under a lock and marked complete last).

`osvenv.py --tool NAME REQUIREMENT...` caches a tool's venv (tempest, rally) the same way.
"""

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


def releases():
    # releases.yml is flat enough to read without PyYAML on the agent's python3.
    import ast
    out, section, series = {"releases": {}, "extras": [], "packages": {}}, None, None
    for line in open(os.path.join(HERE, "..", "releases.yml")):
        text = line.split("#", 1)[0].rstrip()
        if not text:
            continue
        indent = len(text) - len(text.lstrip())
        key, _, value = text.strip().partition(":")
        key, value = key.strip().strip('"'), value.strip()
        if indent == 0:
            section = key
            if value:
                out[section] = ast.literal_eval(value)
        elif section == "releases" and indent == 2:
            series = key
            out["releases"][series] = {}
        elif section == "releases":
            out["releases"][series][key] = value.strip('"')
        else:
            out[section][key] = value.strip('"')
    return out


def requirements(service, version):
    data = releases()
    version = data["releases"].get(version, {}).get(service, version)
    package = data["packages"].get(service)
    if package is None:
        sys.exit(f"osvenv.py: unknown service `{service}` (releases.yml packages: "
                 f"{', '.join(data['packages'])})")
    return [f"{package}=={version}", *data["extras"]]


def ensure(name, reqs):
    python = f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
    key = hashlib.sha256(json.dumps([python, reqs]).encode()).hexdigest()[:16]
    path = os.path.join(CACHE, f"{name}-{key}")
    done = os.path.join(path, ".complete")
    if os.path.exists(done):
        return path
    os.makedirs(CACHE, exist_ok=True)
    with open(os.path.join(CACHE, f".{name}-{key}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(done):
            return path
        shutil.rmtree(path, ignore_errors=True)
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "venv", path], check=True)
        pip = [os.path.join(path, "bin", "pip"), "install", "--quiet",
               "--disable-pip-version-check", *reqs]
        if subprocess.run(pip, stdin=subprocess.DEVNULL).returncode != 0:
            shutil.rmtree(path, ignore_errors=True)
            sys.exit(f"osvenv.py: `pip install {' '.join(reqs)}` failed")
        with open(done, "w") as f:
            json.dump({"requirements": reqs, "python": python,
                       "seconds": round(time.monotonic() - started, 1)}, f)
    return path


def main(argv):
    if len(argv) >= 3 and argv[0] == "--tool":
        print(ensure(argv[1], argv[2:]))
    elif len(argv) == 2:
        print(ensure(argv[0], requirements(*argv)))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
