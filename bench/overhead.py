"""Benchmark: rollci's own overhead, per step and across the demo pipeline.

DESIGN.md's targets: "a step's own overhead (start, config, state) under 20 ms; the
pipeline's total overhead under 5% of the playbooks' time". Both are measured and printed,
never asserted; the exit status is 1 only when the demo run fails (or runs past
--timeout) or a process the benchmark started outlives `rollci cleanup`.

1. Step overhead. A tiny `local` lab (one node, no root) whose every action is the command
   `true`. Each repetition starts from an empty workspace and runs, each in a fresh
   process: `provision`, then `deploy`, `verify --phase before`, `upgrade` (all at once),
   `verify --phase after`, `report`, `status --json` and `cleanup`, each on the same
   post-provision journal (state.json is restored before every step, untimed, so the
   journal does not grow across repetitions). `rollci --version` (bare process start) and
   `true` launched the same way are timed in the same loop. Per step:
     wall      launch to reaped exit, as the caller sees it (min and median)
     CPU       user + system time of rollci and its children (insensitive to other load)
     overhead  median wall minus the actions' own time (n x median wall of `true`); the
               caller's cost of launching rollci itself is left in
     pre       launch -> step record `started` (exec, config, lock, journal read + save)
     body      the step record's span minus its actions' `true` time
     post      step record `ended` -> exit (reports rewritten after every step, exit)
     attempt   the journal's span of the one `true` attempt (what rollci adds around an
               action: waiting for its exit, adopting what it left, journal saves)
     fsyncs    fsync calls of the step, from one more repetition run under strace (if
               installed; that repetition is not timed)
   pre/body/post/attempt are medians; they come from the journal's timestamps against the
   caller's realtime clock (the same clock), so they add up only roughly to the wall.

2. Pipeline overhead. `rollci run` on a copy of the demo lab (examples/demo) in a temp
   workspace, once. The journal alone cannot give the time spent in external tools (see
   the notes printed at the end), so every external tool is timed from the outside:
   `ansible-playbook` is found first on PATH as a bash shim that records its real start
   and end ($EPOCHREALTIME) and exit status, and the smoke command in the copied lab file
   is prefixed with the same kind of shim. Then:
     wall       launch of `rollci run` to its exit (it ends with cleanup)
     external   time inside playbooks and the smoke command (shim records)
     waits      intended sleeps: the probing baseline before the first upgrade action,
                retry_delay before each retry recorded in the journal
     overhead   wall - external - waits - the shims' own start cost (calibrated on `true`)
   and the ratio overhead / playbooks' time against the 5% target. rollci's in-process
   HTTP work (persistent resources, stopping probes) and the cleanup's wait for lab
   processes to exit on SIGTERM are not external tools: they count as overhead and are
   shown per step. The journal-only estimate (attempt spans as the external time) is
   printed beside it, with what the journal lacks.

Every process started carries a tag in its environment; at the end (also after a failure
or Ctrl-C) the workspaces are cleaned up with `rollci cleanup` and any tagged process
still alive is stopped by pid and reported.

Run from the repository root after `cargo build --release` (haproxy and .venv's
ansible-playbook are needed for part 2, as for `make demo`):

    .venv/bin/python bench/overhead.py [--repeat 20] [--skip-pipeline]
"""

import argparse
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
import uuid
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROLLCI = ROOT / "target" / "release" / "rollci"
DEMO = ROOT / "examples" / "demo"
VENV_BIN = ROOT / ".venv" / "bin"
STEP_TARGET_MS = 20.0
PIPELINE_TARGET = 0.05
# Every process the benchmark starts inherits this variable; the sweep finds them by it.
TAG_VAR = "ROLLCI_BENCH_TAG"
TAG = uuid.uuid4().hex

# The step lab: every action a `true` command, one node, no probes, no smoke.
STEP_LAB = """\
[lab]
name = "bench"
from_release = "A"
to_release = "B"

[provider]
kind = "local"
nodes = 1

[[deploy.actions]]
name = "noop"
command = ["true"]

[[verify.actions]]
name = "noop"
command = ["true"]

[upgrade]
mode = "all-at-once"
action = { name = "noop", command = ["true"] }
"""

# (label, argv after the global options, number of `true` actions it runs)
STEPS = [
    ("deploy", ["deploy"], 1),
    ("verify:before", ["verify", "--phase", "before"], 1),
    ("upgrade", ["upgrade"], 1),
    ("verify:after", ["verify", "--phase", "after"], 1),
    ("report", ["report"], 0),
    ("status --json", ["status", "--json"], 0),
]

# A timing shim: the real tool's start, end and status, one line per run. `@SETUP@` sets
# `real` (the program) and `label`.
SHIM = """\
#!/bin/bash
# bench/overhead.py: times one external tool run from the inside (start, end, status).
@SETUP@
start=$EPOCHREALTIME
"$real" "$@"
rc=$?
printf '%s %s %s %s\\n' "$label" "$start" "$EPOCHREALTIME" "$rc" >> "$ROLLCI_BENCH_TIMES"
exit "$rc"
"""
SHIM_PLAYBOOK = SHIM.replace("@SETUP@", 'real=@REAL@\nlast=${@: -1}\nlabel="playbook:${last##*/}"')
SHIM_TIMED = SHIM.replace("@SETUP@", 'real=$1\nshift\nlabel="command:$real"')
TIMED = "rollci-bench-timed"
SMOKE_COMMAND = 'command = ["python3", "-m", "subunit.run"'


# --- small helpers -------------------------------------------------------------------------

def parse_ts(text):
    """Epoch seconds of an RFC 3339 UTC timestamp with up to nanosecond precision."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text)
    if not m:
        raise ValueError(f"unexpected timestamp {text!r}")
    zone = "+00:00" if m[3] == "Z" else m[3]
    whole = datetime.fromisoformat(m[1] + zone).timestamp()
    return whole + int((m[2] or "0").ljust(9, "0")[:9]) / 1e9


def parse_duration(text):
    """Seconds of a humantime duration as the lab files use them ("1s", "200ms", "2m")."""
    units = {"ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h)", text)
    if not parts:
        raise ValueError(f"unexpected duration {text!r}")
    return sum(float(n) * units[u] for n, u in parts)


def child_env(extra=None):
    """Our environment without rollci's own variables (flags decide), plus the tag."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROLLCI_")}
    env.update(extra or {})
    env[TAG_VAR] = TAG
    return env


class Launch:
    """One process run to its end: wall (s), CPU of it and its children (s), realtime
    start and end (epoch s), exit code."""

    def __init__(self, argv, env, stdout=subprocess.DEVNULL, timeout=None):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.t0 = time.time()
        began = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=stdout,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self.code = proc.wait(timeout=timeout)
        except BaseException:
            stop_group(proc)
            raise
        self.wall = time.perf_counter() - began
        self.t1 = time.time()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def stop_group(proc):
    """TERM, a grace period, KILL: the process group of a child we started."""
    for sig, grace in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=grace)
            break
        except subprocess.TimeoutExpired:
            continue


def rollci(config, workspace, *args):
    return [str(ROLLCI), "--config", str(config), "--workspace", str(workspace), *args]


def ms(seconds):
    return seconds * 1000.0


def share(part, whole):
    return f"{part / whole:.2%}" if whole else "n/a"


def med(values):
    return statistics.median(values) if values else float("nan")


# --- part 1: step overhead -----------------------------------------------------------------

def read_state(workspace):
    return json.loads((Path(workspace) / "state.json").read_text())


def label_of(rec):
    return rec["step"] + (f":{rec['phase']}" if rec.get("phase") else "")


def last_record(workspace, label):
    """The latest finished journal record with this label (`verify:before`, …)."""
    for rec in reversed(read_state(workspace)["steps"]):
        if label_of(rec) == label and rec.get("ended"):
            return rec
    raise RuntimeError(f"no finished `{label}` record in {workspace}/state.json")


def span(rec):
    return parse_ts(rec["ended"]) - parse_ts(rec["started"])


def timed_step(samples, label, argv, env, workspace, journaled=True):
    """Runs one step, appends its wall, CPU and journal breakdown to `samples[label]`."""
    run = Launch(argv, env)
    if run.code != 0:
        raise RuntimeError(f"`{' '.join(argv)}` failed with exit status {run.code}")
    entry = {"wall": run.wall, "cpu": run.cpu}
    if journaled:
        rec = last_record(workspace, label)
        entry.update(pre=parse_ts(rec["started"]) - run.t0, span=span(rec),
                     post=run.t1 - parse_ts(rec["ended"]),
                     attempts=sum(span(a) for a in rec["attempts"] if a.get("ended")))
    samples.setdefault(label, []).append(entry)


def fsyncs(argv, env, tmp):
    """fsync calls of one run under strace (None without strace)."""
    strace = shutil.which("strace")
    if not strace:
        return None
    out = tmp / "strace.txt"
    Launch([strace, "-f", "-qq", "-e", "trace=fsync,fdatasync", "-o", str(out), *argv], env)
    return sum(1 for line in out.read_text().splitlines()
               if re.search(r"\b(fsync|fdatasync)\(", line))


def one_repetition(samples, config, workspace, env, syscalls=None):
    """Every step once on a fresh lab; with `syscalls`, counts fsyncs instead of timing."""
    def step(label, args, journaled=True):
        argv = rollci(config, workspace, *args)
        if syscalls is not None:
            syscalls[label] = fsyncs(argv, env, config.parent)
        else:
            timed_step(samples, label, argv, env, workspace, journaled)

    shutil.rmtree(workspace, ignore_errors=True)
    step("provision", ["provision"])
    snapshot = (workspace / "state.json").read_bytes()
    for label, args, _ in STEPS:
        # The same post-provision journal for every step: it must not grow with repetitions.
        (workspace / "state.json").write_bytes(snapshot)
        step(label, args, journaled=not label.startswith("status"))
    (workspace / "state.json").write_bytes(snapshot)
    step("cleanup", ["cleanup"])


def step_bench(tmp, repeat):
    lab = tmp / "steps"
    lab.mkdir()
    config = lab / "rollci.toml"
    config.write_text(STEP_LAB)
    workspace = lab / "ws"
    env = child_env()
    samples = {}
    for _ in range(repeat):
        for floor, argv in (("`true`", ["true"]), ("rollci --version", [str(ROLLCI), "--version"])):
            timed_step(samples, floor, argv, env, workspace, journaled=False)
        one_repetition(samples, config, workspace, env)
    syscalls = {}
    one_repetition(samples, config, workspace, env, syscalls)
    return samples, syscalls


def print_steps(samples, syscalls, repeat):
    true_ms = ms(med([s["wall"] for s in samples["`true`"]]))
    actions = {label: n for label, _, n in STEPS}
    print(f"\n== step overhead: {repeat} repetitions, each step a fresh process; target "
          f"{STEP_TARGET_MS:.0f} ms; every action is `true`")
    print(f"{'':>17}  {'wall med':>8}  {'wall min':>8}  {'CPU med':>7}  {'overhead':>8}  "
          f"{'x target':>8}  {'pre':>6}  {'body':>6}  {'post':>6}  {'attempt':>7}  {'fsyncs':>6}")
    print(f"{'':>17}  {'ms':>8}  {'ms':>8}  {'ms':>7}  {'ms':>8}  {'':>8}  "
          f"{'ms':>6}  {'ms':>6}  {'ms':>6}  {'ms':>7}")
    order = ["`true`", "rollci --version", "provision"] + [l for l, _, _ in STEPS] + ["cleanup"]
    for label in order:
        rows = samples[label]
        wall = ms(med([r["wall"] for r in rows]))
        line = (f"{label:>17}  {wall:8.1f}  {ms(min(r['wall'] for r in rows)):8.1f}  "
                f"{ms(med([r['cpu'] for r in rows])):7.1f}")
        if label == "`true`":
            print(line + "  (an action's own time, launched the same way)")
            continue
        n = actions.get(label, 0)
        overhead = wall - n * true_ms
        line += f"  {overhead:8.1f}  {overhead / STEP_TARGET_MS:7.1f}x"
        if "pre" in rows[0]:
            body = ms(med([r["span"] for r in rows])) - n * true_ms
            attempt = f"{ms(med([r['attempts'] for r in rows])):7.1f}" if n else f"{'-':>7}"
            line += (f"  {ms(med([r['pre'] for r in rows])):6.1f}  {body:6.1f}"
                     f"  {ms(med([r['post'] for r in rows])):6.1f}  {attempt}")
        else:
            line += f"  {'':>6}  {'':>6}  {'':>6}  {'':>7}"
        count = syscalls.get(label)
        print((line + (f"  {count:6d}" if count is not None else "")).rstrip())
    print("overhead = wall med - actions x `true`; pre = launch -> step record started; body ="
          " record span - actions x `true`;\npost = record ended -> exit; attempt = the journal's"
          " span of the `true` attempt; fsyncs: one run under strace")


# --- part 2: pipeline overhead -------------------------------------------------------------

def write_shims(shim_dir):
    search = os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", "")])
    real = shutil.which("ansible-playbook", path=search)
    if not real:
        raise RuntimeError("`ansible-playbook` not found on PATH (hint: make deps, or run "
                           "with .venv/bin on PATH)")
    shim_dir.mkdir()
    for name, text in (("ansible-playbook", SHIM_PLAYBOOK.replace("@REAL@", shell_quote(real))),
                       (TIMED, SHIM_TIMED)):
        path = shim_dir / name
        path.write_text(text)
        path.chmod(0o755)


def shell_quote(text):
    return "'" + text.replace("'", "'\\''") + "'"


def copy_demo(dest):
    """The demo lab, with the smoke command run through the timing shim."""
    shutil.copytree(DEMO, dest, ignore=shutil.ignore_patterns(".rollci", "__pycache__"))
    config = dest / "rollci.toml"
    text = config.read_text()
    if text.count(SMOKE_COMMAND) != 1:
        raise RuntimeError(f"the demo's smoke command no longer reads `{SMOKE_COMMAND}…]`: "
                           "update bench/overhead.py")
    config.write_text(text.replace(SMOKE_COMMAND, SMOKE_COMMAND.replace("[", f'["{TIMED}", ', 1)))
    return config


def shim_cost(shim_dir, env, repeat=30):
    """Median extra wall time (s) of running `true` through the timing shim."""
    direct, shimmed = [], []
    for _ in range(repeat):
        direct.append(Launch(["true"], env).wall)
        shimmed.append(Launch([str(shim_dir / TIMED), "true"], env).wall)
    return max(0.0, med(shimmed) - med(direct))


def read_times(path):
    """Shim records: (label, start, end, status), in the order they ended."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        label, start, end, rc = line.rsplit(" ", 3)
        records.append((label, float(start.replace(",", ".")), float(end.replace(",", ".")),
                        int(rc)))
    return records


def pipeline_bench(tmp, timeout):
    shim_dir = tmp / "shims"
    write_shims(shim_dir)
    config = copy_demo(tmp / "demo")
    workspace = tmp / "demo-ws"
    times = tmp / "tool-times.txt"
    path = os.pathsep.join([str(shim_dir), str(VENV_BIN), os.environ.get("PATH", "")])
    env = child_env({"PATH": path, "ROLLCI_BENCH_TIMES": str(times)})
    calibration = tmp / "calibration.txt"
    cost = shim_cost(shim_dir, dict(env, ROLLCI_BENCH_TIMES=str(calibration)))
    log = tmp / "run.log"
    print("\n== pipeline: `rollci run` on the demo lab, once (its output is shown only if it "
          "fails) ...", flush=True)
    with open(log, "wb") as out:
        try:
            run = Launch(rollci(config, workspace, "run"), env, stdout=out, timeout=timeout)
        except subprocess.TimeoutExpired:
            print(f"`rollci run` still running after {timeout:.0f} s: stopped (see --timeout)")
            return None
    if run.code != 0:
        tail = log.read_text(errors="replace").splitlines()[-30:]
        print("\n".join(tail))
        print(f"`rollci run` failed with exit status {run.code}")
    availability = workspace / "evidence" / "availability.json"
    return {"run": run, "state": read_state(workspace), "tools": read_times(times),
            "availability": json.loads(availability.read_text()) if availability.exists() else {},
            "config": tomllib.loads(config.read_text()), "shim_cost": cost,
            "workspace": workspace}


def retry_delays(config):
    """action name -> retry_delay (s) of every action in the lab file."""
    delays = {}
    sections = [config.get("provision", {}).get(k, []) for k in ("host", "lab", "vms")]
    sections += [config.get("deploy", {}).get("actions", []),
                 config.get("verify", {}).get("actions", []),
                 config.get("upgrade", {}).get("components", [])]
    if "action" in config.get("upgrade", {}):
        sections.append([config["upgrade"]["action"]])
    for action in (a for section in sections for a in section):
        delays[action["name"]] = parse_duration(action.get("retry_delay", "0s"))
    return delays


def intended_waits(rec, config):
    """Sleeps rollci does on purpose inside one step record (s)."""
    delays = retry_delays(config)
    waits = sum(delays.get(a["action"], 0.0) for a in rec.get("attempts", []) if a["attempt"] > 1)
    if rec["step"] == "upgrade" and config.get("probes"):
        waits += parse_duration(config.get("probing", {}).get("baseline", "2s"))
    return waits


def overlap(a0, a1, b0, b1):
    return max(0.0, min(a1, b1) - max(a0, b0))


def analyze(result):
    """Per step record: span, time in external tools, intended waits, attempt spans."""
    tools, config = result["tools"], result["config"]
    rows = []
    for rec in result["state"]["steps"]:
        if not rec.get("ended"):
            continue
        s0, s1 = parse_ts(rec["started"]), parse_ts(rec["ended"])
        inside = [overlap(s0, s1, t0, t1) for _, t0, t1, _ in tools]
        rows.append({"label": label_of(rec), "start": s0, "end": s1, "span": s1 - s0,
                     "external": sum(inside), "tool_runs": sum(1 for x in inside if x > 0),
                     "attempts": sum(span(a) for a in rec["attempts"] if a.get("ended")),
                     "waits": intended_waits(rec, config)})
    return rows


def attempt_excess(result):
    """Per journaled attempt: its span minus the tool run inside it (s)."""
    tools = result["tools"]
    excess = []
    for rec in result["state"]["steps"]:
        for a in rec["attempts"]:
            if a.get("ended"):
                a0, a1 = parse_ts(a["started"]), parse_ts(a["ended"])
                excess.append((a1 - a0) - sum(overlap(a0, a1, t0, t1) for _, t0, t1, _ in tools))
    return excess


def print_baseline(result):
    """The probing baseline as configured (counted as a wait) and as it happened."""
    availability, config = result["availability"], result["config"]
    actions = availability.get("actions") or []
    if not config.get("probes") or not availability.get("started") or not actions:
        return
    gap = parse_ts(actions[0]["start"]) - parse_ts(availability["started"])
    baseline = parse_duration(config.get("probing", {}).get("baseline", "2s"))
    print(f"{'  probes start + baseline':<36}{gap:9.3f} s   (configured {ms(baseline):.0f} ms, "
          f"counted as a wait; the {ms(gap - baseline):.1f} ms more is overhead)")


def print_pipeline(result):
    run, tools, cost = result["run"], result["tools"], result["shim_cost"]
    rows = analyze(result)
    if not rows:
        print("the journal has no finished step record")
        return
    print(f"{'step record':>15}  {'span s':>8}  {'tools s':>8}  {'waits s':>7}  {'own ms':>8}  "
          f"{'attempts s':>10}")
    for r in rows:
        own = r["span"] - r["external"] - r["waits"] - r["tool_runs"] * cost
        print(f"{r['label']:>15}  {r['span']:8.3f}  {r['external']:8.3f}  {r['waits']:7.3f}  "
              f"{ms(own):8.1f}  {r['attempts']:10.3f}")
    first, last = min(r["start"] for r in rows), max(r["end"] for r in rows)
    between = (last - first) - sum(r["span"] for r in rows)
    for label, value, what in (
            ("start", first - run.t0, "launch -> first step record"),
            ("between steps", between, "reports rewritten after each step, banners"),
            ("exit", run.t1 - last, "last step record -> exit")):
        print(f"{label:>15}  {'':>8}  {'':>8}  {'':>7}  {ms(value):8.1f}  ({what})")
    print("tools = time inside playbooks and the smoke command (shims); own = span - tools - "
          "waits - shims' start;\nattempts = the journal's attempt spans (what it offers as "
          "tool time)")

    playbook_runs = [t1 - t0 for label, t0, t1, _ in tools if label.startswith("playbook:")]
    command_runs = [t1 - t0 for label, t0, t1, _ in tools if label.startswith("command:")]
    playbooks, commands = sum(playbook_runs), sum(command_runs)
    waits = sum(r["waits"] for r in rows)
    shims = len(tools) * cost
    overhead = run.wall - playbooks - commands - waits - shims
    cleanup = sum(r["span"] - r["external"] for r in rows if r["label"] == "cleanup")
    print()
    figures = [
        ("wall time of `rollci run`", run.wall, f"exit status {run.code}"),
        (f"in playbooks ({len(playbook_runs)} runs)", playbooks, ""),
        (f"in the smoke command ({len(command_runs)} runs)", commands, ""),
        ("intended waits", waits, "probing baseline, retry delays"),
        ("timing shims' own start", shims, f"{len(tools)} x {ms(cost):.1f} ms, calibrated"),
        ("rollci's overhead", overhead, f"{share(overhead, playbooks)} of the playbooks' time; "
                                       f"target {PIPELINE_TARGET:.0%}"),
        ("  of which the cleanup step", cleanup, "stops the lab's processes, waits for them"),
    ]
    for label, seconds, note in figures:
        print(f"{label:<36}{seconds:9.3f} s" + (f"   ({note})" if note else ""))

    print_baseline(result)
    attempts = sum(r["attempts"] for r in rows)
    journal_only = run.wall - attempts - waits
    excess = attempt_excess(result)
    print(f"\njournal-only estimate (attempt spans taken as tool time): {journal_only:.3f} s = "
          f"{share(journal_only, attempts)} of the attempts' time")
    print(f"  attempt spans exceed the tool runs inside them by {ms(sum(excess)):.0f} ms "
          f"({len(excess)} attempts, median {ms(med(excess)):.1f} ms, max "
          f"{ms(max(excess, default=0)):.1f} ms)")
    print(f"  the smoke command ({commands:.3f} s in {len(command_runs)} runs) has no attempt "
          "record: the journal leaves it in rollci's time")


# --- processes and workspaces --------------------------------------------------------------

def tagged_processes():
    """Pids of live processes carrying this benchmark's tag in their environment."""
    needle = f"{TAG_VAR}={TAG}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if needle in environ.split(b"\0") and stat[stat.rfind(")") + 2] != "Z":
            found.append(int(entry))
    return found


def sweep(workspaces, configs):
    """`rollci cleanup` on every workspace that has a journal, then stops any tagged process
    left (by pid). Returns the pids that had to be stopped."""
    for config, workspace in zip(configs, workspaces):
        if (workspace / "state.json").exists() and config.exists():
            try:
                Launch(rollci(config, workspace, "cleanup"), child_env(), timeout=120)
            except (OSError, subprocess.TimeoutExpired) as err:
                print(f"!!! cleanup of {workspace} failed: {err}")
    left = tagged_processes()
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in tagged_processes():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while tagged_processes() and time.monotonic() < deadline:
            time.sleep(0.05)
    return left


def print_setting():
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} CPUs, load average {load} (1 / 5 / 15 min); "
          f"rollci {ROLLCI}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="repetitions of each step")
    parser.add_argument("--skip-pipeline", action="store_true", help="only the step overhead")
    parser.add_argument("--timeout", type=float, default=900, help="limit of the demo run (s)")
    args = parser.parse_args()
    if not ROLLCI.exists():
        sys.exit(f"{ROLLCI} is missing (hint: cargo build --release)")
    status = 0
    with tempfile.TemporaryDirectory(prefix="rollci-bench-overhead-") as name:
        tmp = Path(name)
        configs = [tmp / "steps" / "rollci.toml", tmp / "demo" / "rollci.toml"]
        workspaces = [tmp / "steps" / "ws", tmp / "demo-ws"]
        try:
            print_setting()
            samples, syscalls = step_bench(tmp, args.repeat)
            print_steps(samples, syscalls, args.repeat)
            if not args.skip_pipeline:
                result = pipeline_bench(tmp, args.timeout)
                if result:
                    print_pipeline(result)
                status = 0 if result and result["run"].code == 0 else 1
            print_setting()
        finally:
            left = sweep(workspaces, configs)
            print(f"processes of the benchmark still running after `rollci cleanup`: {len(left)}"
                  + (f" (stopped: {', '.join(map(str, left))})" if left else ""))
            if left:
                status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
