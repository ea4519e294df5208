"""Benchmark: `rollci results STREAM --junit OUT` against python-subunit's `subunit2junitxml`.

Generates a 20,000-test subunit v2 stream (passes with captured stdout, failures with long
tracebacks, skips, expected failures and unexpected successes) with python-subunit's
`StreamResultToBytes`, converts it with both tools, each in a fresh process, and prints wall
time, peak RSS and their ratios. Timings are reported, never asserted; the exit status is 1
only when the two JUnit files disagree on the test, failure or skip counts.

Run from the repository root after `cargo build --release`:

    .venv/bin/python bench/subunit.py [--tests 20000] [--repeat 3]
"""

import argparse
import datetime
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

# This file is named like the package it benchmarks: keep its folder off the import path.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from subunit.v2 import StreamResultToBytes  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ROLLCI = ROOT / "target" / "release" / "rollci"
VENV_BIN = Path(sys.executable).parent
UTC = datetime.timezone.utc

# Share of each outcome, in percent.
MIX = [("success", 80), ("fail", 10), ("skip", 5), ("xfail", 3), ("uxsuccess", 2)]


def traceback(rng, test_id):
    """A long, realistic-looking traceback (about 6 KB)."""
    frames = []
    for depth in range(rng.randint(22, 40)):
        frames.append(
            f'  File "/opt/stack/tempest/tempest/lib/common/rest_client.py", line {100 + depth}, '
            f"in _request\n    resp, body = self.raw_request(url, method, headers=headers, "
            f"body=body, chunked=chunked)  # frame {depth}\n"
        )
    return (
        "Traceback (most recent call last):\n"
        + "".join(frames)
        + f"tempest.lib.exceptions.ServerFault: Got server fault in {test_id}\n"
        + "Details: <html><body>500 Internal Server Error &amp; more</body></html>\n"
    ).encode()


def write_test(out, rng, index, status, start):
    test_id = (
        f"tempest.api.compute.servers.test_group_{index % 97}.ServersTestJSON"
        f".test_case_{index:05d}[id-{rng.getrandbits(64):016x},smoke]"
    )
    tags = {f"worker-{index % 4}"}
    end = start + datetime.timedelta(milliseconds=rng.randint(1, 3000))
    out.status(test_id=test_id, test_status="inprogress", test_tags=tags, timestamp=start)
    text = "text/plain;charset=utf8"
    if status == "success":
        log = f"INFO tempest request {index}: 200 OK\n".encode() * 6
        out.status(test_id=test_id, file_name="pythonlogging:''", file_bytes=log,
                   mime_type=text, eof=True, timestamp=end)
    elif status in ("fail", "xfail"):
        out.status(test_id=test_id, file_name="traceback", file_bytes=traceback(rng, test_id),
                   mime_type=text, eof=True, timestamp=end)
    elif status == "skip":
        out.status(test_id=test_id, file_name="reason", file_bytes=b"Feature not enabled",
                   mime_type=text, eof=True, timestamp=end)
    out.status(test_id=test_id, test_status=status, test_tags=tags, timestamp=end)
    return end


def generate(path, tests, seed=7):
    rng = random.Random(seed)
    statuses = [s for s, share in MIX for _ in range(share)]
    t = datetime.datetime(2024, 1, 1, tzinfo=UTC)
    with open(path, "wb") as f:
        out = StreamResultToBytes(f)
        for i in range(tests):
            t = write_test(out, rng, i, rng.choice(statuses), t)


def run_measured(argv, stdin_path, stdout_path):
    """Wall time (s) and peak RSS (KiB) of one fresh process, via /usr/bin/time if present.

    `subunit2junitxml` exits 1 when the stream has failures, so only >1 is an error.
    """
    time_bin = shutil.which("time") or "/usr/bin/time"
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        prefix = [time_bin, "-f", "%M", "-o", rss.name] if os.path.exists(time_bin) else []
        stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
        with open(stdout_path, "wb") as out:
            began = time.perf_counter()
            proc = subprocess.run(prefix + argv, stdin=stdin, stdout=out, stderr=subprocess.PIPE)
            wall = time.perf_counter() - began
        if stdin_path:
            stdin.close()
        if proc.returncode not in (0, 1):
            sys.exit(f"{argv[0]} failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}")
        peak = int(rss.read().split()[-1]) if prefix else 0
    return wall, peak


def junit_counts(path):
    """(tests, failures incl. errors, skips) of a JUnit file; skips subunit passthrough."""
    data = Path(path).read_bytes()
    root = ET.fromstring(data[data.index(b"<"):])
    tests = failures = skips = 0
    for case in root.iter("testcase"):
        tests += 1
        failures += case.find("failure") is not None or case.find("error") is not None
        skips += case.find("skipped") is not None
    return tests, failures, skips


def best_of(repeat, argv, stdin_path, out_path):
    runs = [run_measured(argv, stdin_path, out_path) for _ in range(repeat)]
    return min(w for w, _ in runs), statistics.median(w for w, _ in runs), max(m for _, m in runs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not ROLLCI.exists():
        sys.exit(f"{ROLLCI} is missing (hint: cargo build --release)")
    with tempfile.TemporaryDirectory(prefix="rollci-bench-") as tmp:
        stream = Path(tmp) / "stream.subunit"
        generate(stream, args.tests)
        size = stream.stat().st_size
        print(f"stream: {args.tests} tests, {size / 1e6:.1f} MB")
        ours_xml, theirs_xml = Path(tmp) / "rollci.xml", Path(tmp) / "subunit2junitxml.xml"
        ours = best_of(args.repeat, [str(ROLLCI), "results", str(stream), "--junit", str(ours_xml)],
                       None, Path(tmp) / "rollci.out")
        theirs = best_of(args.repeat, [str(VENV_BIN / "subunit2junitxml")], stream, theirs_xml)
        report(ours, theirs, size)
        counts = {"rollci": junit_counts(ours_xml), "subunit2junitxml": junit_counts(theirs_xml)}
        for name, (tests, failures, skips) in counts.items():
            print(f"{name:>17}: tests {tests}, failures {failures}, skipped {skips}")
        if counts["rollci"] != counts["subunit2junitxml"]:
            print("COUNTS DIFFER")
            return 1
        print("counts equal")
    return 0


def report(ours, theirs, size):
    print(f"{'':>17}  {'best s':>8}  {'median s':>8}  {'MB/s':>7}  {'peak RSS MiB':>12}")
    for name, (best, median, peak) in [("rollci", ours), ("subunit2junitxml", theirs)]:
        print(f"{name:>17}  {best:8.3f}  {median:8.3f}  {size / 1e6 / best:7.1f}  {peak / 1024:12.1f}")
    speedup = theirs[0] / ours[0]
    memory = theirs[2] / ours[2] if ours[2] else float("nan")
    print(f"throughput ratio (best wall time): {speedup:.1f}x; peak memory ratio: {memory:.1f}x less")


if __name__ == "__main__":
    sys.exit(main())
