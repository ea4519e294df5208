"""Benchmark: the openstack provider against mimic (Rackspace's OpenStack emulator).

Printed, never asserted:

    to ACTIVE    `rollci provision --acquire-only` of a lab whose server mimic holds in BUILD
                 for BUILD seconds (`server_building` metadata): rollci's overhead is the
                 time beyond BUILD (Keystone token, catalog, flavor and image lookups, the
                 create, the polls with backoff, the journal writes)
    cleanup      `rollci cleanup` of that lab: the stray search by tag, the delete, the wait
                 until Nova answers 404

The lab uses `reach = "none"` (nobody connects to mimic's invented addresses). mimic comes
from tests/mimic/start (`make test-deps` installs it). Run from the repository root after
`cargo build --release`:

    .venv/bin/python bench/openstack.py [--runs N] [--build SECONDS]   (ROLLCI_BIN: another binary)
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROLLCI = os.environ.get("ROLLCI_BIN", str(ROOT / "target/release/rollci"))


def lab_text(build):
    return (
        '[lab]\nname = "bench-cloud"\nfrom_release = "A"\nto_release = "B"\n\n'
        '[provider]\nkind = "openstack"\ncloud = "mimic"\nreach = "none"\n\n'
        '[provider.server]\nname = "host"\nflavor = "512MB Standard Instance"\n'
        'image = "Ubuntu 14.04 LTS (Trusty Tahr) (PVHVM)"\nnetwork = "public"\n'
        f'metadata = {{ server_building = "{build}" }}\n\n'
        '[upgrade]\nmode = "all-at-once"\naction = { name = "u", command = ["true"] }\n'
    )


def rollci(folder, *args):
    start = time.monotonic()
    done = subprocess.run([ROLLCI, "--config", "rollci.toml", *args], cwd=folder,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    took = time.monotonic() - start
    if done.returncode != 0:
        sys.exit(f"rollci {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return took


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--build", type=float, default=3.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rollci-bench-os-") as tmp:
        mimic_dir = Path(tmp) / "mimic"
        mimic_dir.mkdir()
        started = subprocess.run([str(ROOT / "tests/mimic/start"), str(mimic_dir)],
                                 capture_output=True, text=True)
        if started.returncode != 0:
            sys.exit(f"tests/mimic/start failed:\n{started.stderr}")
        info = json.loads(started.stdout)
        try:
            active, cleanup = [], []
            for run in range(args.runs):
                folder = Path(tmp) / f"lab{run}"
                folder.mkdir()
                (folder / "rollci.toml").write_text(lab_text(args.build))
                (folder / "clouds.yaml").write_text(
                    "clouds:\n  mimic:\n    auth_type: rackspace_apikey\n    auth:\n"
                    f"      auth_url: {info['auth_url']}\n      username: bench{run}\n"
                    "      api_key: k\n    region_name: ORD\n"
                    "    compute_service_name: cloudServersOpenStack\n")
                active.append(rollci(folder, "provision", "--acquire-only"))
                cleanup.append(rollci(folder, "cleanup"))
        finally:
            subprocess.run([str(ROOT / "tests/mimic/stop"), str(mimic_dir)])
    med = statistics.median
    print(f"openstack provider against mimic ({args.runs} runs, mimic holds BUILD {args.build:g} s)")
    print(f"  provision to ACTIVE   median {med(active):6.2f} s   overhead over BUILD "
          f"{med(active) - args.build:5.2f} s   (min {min(active):.2f}, max {max(active):.2f})")
    print(f"  cleanup               median {med(cleanup):6.2f} s   (min {min(cleanup):.2f}, max {max(cleanup):.2f})")


if __name__ == "__main__":
    main()
