"""Benchmark: probe lateness on a loaded CPU, and whether a late prober's timeouts were
taken for the service's downtime.

`rollci run` on a copy of the demo lab (rolling upgrade, 50 ms probes) twice: on a quiet
machine, then with N CPU-burning processes beside it (default 2, as many as this machine
has cores). Printed per run, from evidence/availability.json and probes.jsonl:

    late max / p99   how late probes were sent after their planned tick (ms)
    prober windows   outage windows rollci marked `prober_late` (not counted)
    api windows      windows it counted against `api`, the VIP: the rolling upgrade drains
                     one node at a time, so the VIP has no real downtime and every counted
                     window there is a wrong attribution (or a real regression)
    node windows     counted windows of the per-node probes (one per node is expected: each
                     node is really stopped during its upgrade)

Figures are printed, never asserted; the exit status is 1 only when a run could not be
made or a burner outlived it. Run from the repository root after `cargo build --release`:

    .venv/bin/python bench/lateness.py [--burners 2]     (ROLLCI_BIN picks another binary)
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROLLCI = Path(os.environ.get("ROLLCI_BIN") or ROOT / "target" / "release" / "rollci")
DEMO = ROOT / "examples" / "demo"


def burn():
    """A process that spins on one core until killed."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def run_demo(tmp, name):
    lab = tmp / name
    shutil.copytree(DEMO, lab, ignore=shutil.ignore_patterns(".rollci", "__pycache__"))
    workspace = lab / ".rollci"
    config = lab / "rollci.toml"
    env = dict(os.environ, PATH=f"{ROOT / '.venv' / 'bin'}:{os.environ.get('PATH', '')}")
    proc = subprocess.run([str(ROLLCI), "--config", str(config), "run"], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=900)
    subprocess.run([str(ROLLCI), "--config", str(config), "cleanup"], env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    availability = json.loads((workspace / "evidence" / "availability.json").read_text())
    probes = [json.loads(line) for line in
              (workspace / "evidence" / "probes.jsonl").read_text().splitlines() if line]
    return proc.returncode, availability, probes


def figures(availability, probes):
    late = sorted(p.get("late_ms", 0.0) for p in probes)
    p99 = late[min(len(late) - 1, int(len(late) * 0.99))] if late else 0.0
    services = availability["services"]
    counted = lambda names: sum(1 for s in services if s["name"] in names
                                for w in s["windows"] if not w.get("prober_late"))
    nodes = [s["name"] for s in services if s["name"].startswith("node@")]
    return {
        "probes": len(probes),
        "late_max_ms": late[-1] if late else 0.0,
        "late_p99_ms": p99,
        "prober_windows": sum(1 for s in services for w in s["windows"] if w.get("prober_late")),
        "prober_ms": sum(s.get("prober_late_ms", 0) for s in services),
        "api_windows": counted(["api"]),
        "api_downtime_ms": next((s["downtime_ms"] for s in services if s["name"] == "api"), 0),
        "node_windows": counted(nodes),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burners", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    if not ROLLCI.exists():
        sys.exit(f"{ROLLCI} is missing (hint: cargo build --release)")
    rows = []
    with tempfile.TemporaryDirectory(prefix="rollci-bench-lateness-") as name:
        tmp = Path(name)
        for label, burners in [("quiet", 0), (f"{args.burners} burners", args.burners)]:
            procs = [burn() for _ in range(burners)]
            try:
                code, availability, probes = run_demo(tmp, label.replace(" ", "-"))
            finally:
                for p in procs:
                    p.kill()
                    p.wait()
            rows.append((label, code, figures(availability, probes), os.getloadavg()[0]))
    print(f"machine: {os.cpu_count()} CPUs; rollci {ROLLCI}")
    print(f"{'run':<12} {'exit':>4} {'probes':>7} {'late max':>9} {'late p99':>9} "
          f"{'prober win':>10} {'prober ms':>9} {'api win':>7} {'api ms':>6} {'node win':>8} {'load':>5}")
    for label, code, f, load in rows:
        print(f"{label:<12} {code:>4} {f['probes']:>7} {f['late_max_ms']:>7.0f}ms "
              f"{f['late_p99_ms']:>7.1f}ms {f['prober_windows']:>10} {f['prober_ms']:>9} "
              f"{f['api_windows']:>7} {f['api_downtime_ms']:>6} {f['node_windows']:>8} {load:>5.1f}")
    wrong = rows[-1][2]["api_windows"]
    print(f"windows wrongly counted against the VIP under load: {wrong}"
          + ("" if wrong == 0 else " (a late prober taken for the service, or a real regression)"))


if __name__ == "__main__":
    main()
