"""Benchmark: the libvirt provider with real guests (TCG on machines without usable KVM).

Printed, never asserted:

    parallel     `rollci provision` of one lab of three guests: from the start of provision
                 until all three answer ssh (rollci boots them at once)
    one by one   three labs of one guest, provisioned one after the other (the sum)
    cleanup      `rollci cleanup` of the three-guest lab (destroy, undefine, overlays)
    examples/vm  the whole `rollci run` of examples/vm (image cached), when --vm-lab

libvirtd is started by tests/libvirt/start when none answers, and stopped again. The guest
image comes from scripts/guest-image (cached by content; the first call builds it). Run from
the repository root after `cargo build --release`:

    .venv/bin/python bench/vm.py [--vm-lab]       (ROLLCI_BIN picks another binary)
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROLLCI = os.environ.get("ROLLCI_BIN", str(ROOT / "target/release/rollci"))


def lab_text(name, vms):
    tables = "".join(f'[[provider.vms]]\nname = "{vm}"\n\n' for vm in vms)
    return (
        f'[lab]\nname = "{name}"\nfrom_release = "A"\nto_release = "B"\n\n'
        f'[provider]\nkind = "libvirt"\nimage = {{ command = ["{ROOT}/scripts/guest-image"] }}\n'
        f'wait = "10m"\n\n{tables}'
        '[upgrade]\nmode = "all-at-once"\naction = { name = "u", command = ["true"] }\n'
    )


def rollci(config, *args):
    """Runs rollci; returns its wall time in seconds (exits on failure)."""
    start = time.monotonic()
    done = subprocess.run([ROLLCI, "--config", str(config), *args],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    took = time.monotonic() - start
    if done.returncode != 0:
        sys.exit(f"rollci {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return took


def lab(folder, name, vms):
    config = Path(folder) / name / "rollci.toml"
    config.parent.mkdir(parents=True)
    config.write_text(lab_text(name, vms))
    return config


def measure(folder):
    three = lab(folder, "three", ["g1", "g2", "g3"])
    singles = [lab(folder, f"one{i}", [f"g{i}"]) for i in (1, 2, 3)]
    try:
        parallel = rollci(three, "provision")
        cleanup = rollci(three, "cleanup")
        one_by_one = 0.0
        for config in singles:
            one_by_one += rollci(config, "provision")
            rollci(config, "cleanup")
    finally:
        for config in [three, *singles]:
            subprocess.run([ROLLCI, "--config", str(config), "cleanup"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return parallel, one_by_one, cleanup


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--vm-lab", action="store_true", help="also time examples/vm")
    opts = parser.parse_args()
    subprocess.run([str(ROOT / "scripts/guest-image")], check=True, stdout=subprocess.DEVNULL)
    with tempfile.TemporaryDirectory(prefix="rollci-bench-vm-") as folder:
        state = Path(folder) / "libvirt.state"
        subprocess.run([str(ROOT / "tests/libvirt/start"), str(state)], check=True)
        try:
            parallel, one_by_one, cleanup = measure(folder)
            print(f"machine: {os.cpu_count()} CPUs; rollci {ROLLCI}")
            print(f"three guests answering ssh, started at once:   {parallel:6.1f} s")
            print(f"three guests answering ssh, one after another: {one_by_one:6.1f} s")
            print(f"ratio: {one_by_one / parallel:.2f}x")
            print(f"cleanup of the three-guest lab:               {cleanup:6.1f} s")
            if opts.vm_lab:
                config = ROOT / "examples/vm/rollci.toml"
                try:
                    print(f"examples/vm `rollci run`:                     "
                          f"{rollci(config, 'run'):6.1f} s")
                finally:
                    subprocess.run([ROLLCI, "--config", str(config), "cleanup"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        finally:
            subprocess.run([str(ROOT / "tests/libvirt/stop"), str(state)])


if __name__ == "__main__":
    main()
