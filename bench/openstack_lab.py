"""Benchmark: the real OpenStack lab (examples/openstack/), wall time split by step.

Printed, never asserted. Three runs of `scripts/demo-openstack` (each checks its own
evidence and leaks, so a figure of a broken run is never printed as a good one):

    rolling, cold   an empty venv cache (ROLLCI_OPENSTACK_CACHE in a temporary folder):
                    every service release, tempest and rally installed by uv from PyPI
    rolling, warm   the shared cache (/var/cache/rollci/openstack) filled: nothing installed
    all-at-once     warm, the lab stopped-the-world, the way Grenade upgrades

The split comes from each run's reports/summary.json (`steps[].duration_ms`); the upgrade's
own phases from `phases[]`. Beside them, Grenade's figure for the same services: its zuul
job's timeout (the only published figure found; see GRENADE below). Run from the repository
root after `cargo build --release`:

    .venv/bin/python bench/openstack_lab.py [--runs cold,warm,all-at-once]   (ROLLCI_BIN: another binary)
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROLLCI = os.environ.get("ROLLCI_BIN", str(ROOT / "target/release/rollci"))
LAB = ROOT / "examples" / "openstack"
WORKSPACES = {"rolling": LAB / ".rollci", "all-at-once": LAB / ".rollci-all-at-once"}
STEPS = ["provision", "deploy", "verify:before", "upgrade", "verify:after", "cleanup"]
# openstack/grenade, .zuul.yaml: job `grenade` (keystone, placement, glance, nova, neutron,
# cinder, swift from devstack) has `timeout: 10800`, seconds; `grenade-multinode` inherits
# it. grenade.sh prints "grenade.sh completed in $SECONDS seconds." per run, but no run's
# figure is published outside its job logs, which are not reachable from here.
GRENADE = ("grenade job timeout (openstack/grenade .zuul.yaml, `timeout: 10800`)", 10800.0)


def run(kind, cache):
    env = dict(os.environ)
    if cache:
        env["ROLLCI_OPENSTACK_CACHE"] = cache
    argv = [sys.executable, str(ROOT / "scripts" / "demo-openstack"), ROLLCI, kind]
    started = time.monotonic()
    done = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    wall = time.monotonic() - started
    if done.returncode != 0:
        sys.stdout.write(done.stdout[-4000:])
        sys.exit(f"bench/openstack_lab.py: the {kind} run failed (exit {done.returncode})")
    with open(WORKSPACES[kind] / "reports" / "summary.json") as f:
        summary = json.load(f)
    steps = {}
    for s in summary["steps"]:
        steps[s["step"]] = steps.get(s["step"], 0.0) + (s["duration_ms"] or 0) / 1000.0
    phases = [(p["action"], (p["duration_ms"] or 0) / 1000.0) for p in summary["phases"]]
    vip = {name: s["downtime_ms"] for name, s in summary["services"].items() if "@" not in name}
    return {"wall": wall, "steps": steps, "phases": phases, "vip": vip,
            "client": client_cost(WORKSPACES[kind], summary)}


def client_cost(workspace, summary):
    """What the openstacksdk probe cost: its rounds, its CPU per round (lab/sdkprobe.py
    prints them on exit), and its share beside the HTTP probes' count."""
    stderr = workspace / "evidence" / "probe-openstacksdk.stderr"
    try:
        last = stderr.read_text().strip().splitlines()[-1]
        cost = json.loads(last)
    except (OSError, IndexError, ValueError):
        return None
    sdk = summary["services"].get("openstacksdk", {})
    cost["failures"] = sdk.get("failures", {})
    return cost


def seconds(v):
    return "—" if v is None else f"{v:7.1f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", default="cold,warm,all-at-once")
    args = parser.parse_args()
    wanted = args.runs.split(",")
    results = {}
    for name in wanted:
        if name == "cold":
            cache = tempfile.mkdtemp(prefix="rollci-bench-cache-")
            try:
                results[name] = run("rolling", cache)
                size = subprocess.run(["du", "-sm", cache], stdout=subprocess.PIPE,
                                      text=True).stdout.split()[0]
                results[name]["cache_mb"] = int(size)
            finally:
                shutil.rmtree(cache, ignore_errors=True)
        elif name == "warm":
            results[name] = run("rolling", None)
        elif name == "all-at-once":
            results[name] = run("all-at-once", None)
        else:
            sys.exit(f"unknown run `{name}` (cold, warm, all-at-once)")
        print(f"--- {name}: {results[name]['wall']:.0f} s", flush=True)

    names = list(results)
    print("\nwall time by step (s), examples/openstack on this machine "
          f"({os.cpu_count()} cores)")
    print(f"{'step':<16}" + "".join(f"{n:>14}" for n in names))
    for step in STEPS:
        print(f"{step:<16}" + "".join(f"{seconds(results[n]['steps'].get(step)):>14}"
                                      for n in names))
    print(f"{'whole run':<16}" + "".join(f"{seconds(results[n]['wall']):>14}" for n in names))
    for n in names:
        if "cache_mb" in results[n]:
            print(f"({n}: the venv cache it filled is {results[n]['cache_mb']} MB)")
    label, grenade = GRENADE
    for n in names:
        wall = results[n]["wall"]
        print(f"{n}: {wall / 60:.1f} min = {wall / grenade:.2f} x the {label}")
    for n in names:
        cost = results[n].get("client")
        if cost:
            print(f"{n}: the openstacksdk probe: {cost['rounds']} rounds, {cost['cpu_s']} s CPU, "
                  f"{cost['cpu_ms_per_round']} ms CPU per round (4 calls, a new connect() each); "
                  f"failures {cost['failures']}")
    for n in names:
        print(f"\n{n}: upgrade phases (s) and VIP downtime (ms) {results[n]['vip']}")
        for action, took in results[n]["phases"]:
            print(f"  {action:<30}{took:7.1f}")


if __name__ == "__main__":
    main()
