#!/usr/bin/env python3
"""A real OpenStack client as a probe: openstacksdk rounds, the way a user's script calls.

  sdkprobe.py                  rollci's `kind = "command"` probe protocol (`{"ready": true}`
                               first, once imported): one JSON line in
                               per probe (`{"n": 7}`), one line out when its round is done
                               (`{"n": 7, "ok": true}` or `{"n": 7, "ok": false, "class":
                               "closed", "status": null, "error": "..."}`), until stdin ends;
                               then its rounds and CPU seconds as one JSON line on stderr.
  sdkprobe.py --loop SECONDS   the same rounds on its own, every SECONDS, until SIGTERM or
                               SIGINT, one JSON line per round (with `t`, the round's start)
                               on stdout: an independent client beside a rolling run.

A round is what the issue's openstacksdk client did: a new `openstack.connect()` (the cloud
of OS_CLIENT_CONFIG_FILE + OS_CLOUD) whose calls share one keep-alive session: a password
token, its validation, the image list and the resource providers (each only when the
catalog has the service). keystoneauth retries nothing by default (connect_retries = 0), and
neither does this: a failed call fails the round, as it fails a user's script.

Classes, as rollci's own probes name them: `refused`, `reset` (ECONNRESET), `closed` (the
connection closed before an answer: "Remote end closed connection without response"),
`timeout`, `status` (an HTTP error answer), `other`. No token or password is ever printed.
"""

import argparse
import http.client
import json
import signal
import sys
import time

import openstack
from keystoneauth1 import exceptions as ks

TIMEOUT = 5


def causes(exc):
    seen = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__ or (exc.args[1] if _wraps(exc) else None)
    return seen


def _wraps(exc):
    # urllib3's ProtocolError('Connection aborted.', RemoteDisconnected(...)) keeps the cause
    # as its second argument, not as __cause__.
    return len(exc.args) > 1 and isinstance(exc.args[1], BaseException)


def classify(exc):
    """(class, status) of a failed call."""
    if isinstance(exc, ks.HttpError):
        return "status", exc.http_status
    chain = causes(exc)
    if any(isinstance(e, (http.client.RemoteDisconnected, http.client.IncompleteRead)) for e in chain):
        return "closed", None
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return "refused", None
    if any(isinstance(e, ConnectionResetError) for e in chain):
        return "reset", None
    if isinstance(exc, (ks.ConnectTimeout, ks.connection.ConnectTimeout)) or any(
            isinstance(e, TimeoutError) for e in chain):
        return "timeout", None
    if "timed out" in str(exc).lower():
        return "timeout", None
    return "other", None


def one_line(exc):
    text = " ".join(str(exc).split())
    return text[:300]


def round_once():
    """One round; None when it passed, else (class, status, error)."""
    conn = openstack.connect(timeout=TIMEOUT)
    step = "connect"
    try:
        step = "POST /v3/auth/tokens"
        token = conn.session.get_token()
        identity = conn.identity
        step = "GET /v3/auth/tokens"
        identity.get("/auth/tokens", headers={"X-Subject-Token": token},
                     raise_exc=True).close()
        if conn.has_service("image"):
            step = "GET /v2/images"
            conn.image.get("/images?limit=5", raise_exc=True).close()
        if conn.has_service("placement"):
            step = "GET /resource_providers"
            conn.placement.get("/resource_providers", raise_exc=True).close()
        return None
    except Exception as exc:  # noqa: BLE001 - every failure is the probe's answer
        kind, status = classify(exc)
        return kind, status, f"{step}: {type(exc).__name__}: {one_line(exc)}"
    finally:
        conn.close()


def answer(n, failure, started):
    out = {"n": n, "ok": failure is None, "latency_ms": (time.monotonic() - started) * 1000}
    if failure is not None:
        out["class"], out["status"], out["error"] = failure
    return out


def serve():
    # Imports are done: rollci starts its schedule now, so start-up is not downtime.
    sys.stdout.write('{"ready": true}\n')
    sys.stdout.flush()
    rounds = 0
    for line in sys.stdin:
        try:
            n = json.loads(line)["n"]
        except (ValueError, KeyError, TypeError):
            continue
        started = time.monotonic()
        out = answer(n, round_once(), started)
        rounds += 1
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()
    # What a round costs this client (bench/openstack_lab.py reads it from the probe's log).
    cpu = time.process_time()
    print(json.dumps({"rounds": rounds, "cpu_s": round(cpu, 3),
                      "cpu_ms_per_round": round(cpu * 1000 / max(rounds, 1), 2)}), file=sys.stderr)


def loop(every):
    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(1))
    n = 0
    while not stop:
        n += 1
        t = time.time()
        started = time.monotonic()
        out = answer(n, round_once(), started)
        out["t"] = t
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()
        time.sleep(max(0.0, every - (time.monotonic() - started)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loop", type=float, metavar="SECONDS")
    args = parser.parse_args()
    if args.loop:
        loop(args.loop)
    else:
        serve()


if __name__ == "__main__":
    main()
