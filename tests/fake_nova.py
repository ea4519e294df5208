#!/usr/bin/env python3
"""A loopback fake OpenStack Compute (Nova) API v2.1 for rollci's tests, for the cases the
mimic emulator cannot serve: servers, flavors, images, console output, and failures on cue.

Usage: fake_nova.py [--keystone URL] [--build-seconds S] [--fail-creates N]
                    [--max-servers N] [--availability-zone Z]... [--dump FILE]

Binds 127.0.0.1 on a free port and prints `{"port": N}` alone on its first stdout line,
then serves (one thread per connection) until SIGTERM or SIGINT (exit 0). Every request
is logged to stderr as one line `METHOD PATH STATUS` (never a header, so never a token).

What it does, like Nova at microversion 2.1 (the wire format of the API reference):
  * Paths under `/v2.1` and `/v2.1/{project_id}` (both forms of a catalog URL); links in
    answers use the form of the request and its Host header. A trailing slash is allowed.
  * `GET /` → 200 `{"versions": [v2.1]}`; `GET /v2.1` and `/v2.1/` → 200 `{"version":
    {"id": "v2.1", "status": "CURRENT", "version": "2.1", "min_version": "2.1",
    "updated", "links", "media-types"}}`; both without a token, like Nova.
  * Auth: every other request needs `X-Auth-Token`, else 401 `{"error": {"code": 401,
    "title": "Unauthorized", "message": "The request you have made requires
    authentication."}}` (keystonemiddleware's body, not a Nova fault) with
    `WWW-Authenticate: Keystone uri="URL"` when `--keystone` is given. With `--keystone URL`
    (a Keystone v3 base, `http://127.0.0.1:P/v3`) the token is validated by
    `GET URL/auth/tokens` with that token as both `X-Auth-Token` and `X-Subject-Token` (a
    token may validate itself); Keystone's 401/404 → 401 here; Keystone unreachable or any
    other answer → 503 `{"error": {"code": 503, "title": "Service Unavailable", ...}}`. A
    result (valid or not) is cached 5 s, never past the token's `expires_at`. The token's
    project is the servers' `tenant_id`, only that project's servers are visible, and a
    `{project_id}` in the path that is not the token's → 400 "Malformed request URL:
    URL's project_id ... doesn't match Context's project_id ...". Without `--keystone`
    any non-empty token is accepted, every server is visible, and `tenant_id` is the
    path's project id or `fake-project`.
  * Microversions: `OpenStack-API-Version: compute V` (or `X-OpenStack-Nova-API-Version`)
    may be absent, `2.1` or `latest`; a malformed one → 400, any other → 406 `computeFault`
    "Version V is not supported by the API. Minimum is 2.1 and maximum is 2.1.". Answers
    carry `OpenStack-API-Version: compute 2.1`, `X-OpenStack-Nova-API-Version: 2.1`,
    `Vary`, `x-openstack-request-id` and `x-compute-request-id`.
  * Errors are Nova faults: `{"<name>": {"code": C, "message": M}}` with name badRequest
    (400), forbidden (403), itemNotFound (404), badMethod (405), conflictingRequest
    (409), overLimit (413), badMediaType (415), computeFault (500 and any other code).
    A body that is not JSON → 400 "Malformed request body"; a Content-Type other than
    application/json → 415; a body over 114688 bytes (Nova's `max_request_body_size`) →
    413 "Request is too large.". Chunked bodies are read.
  * Flavors: `GET /flavors`, `/flavors/detail`, `/flavors/{id}` (404 "Flavor X could
    not be found."): ids "1" m1.tiny (512 MB, 1 vCPU, 1 GB), "2" m1.small (2048, 1, 20),
    "3" m1.medium (4096, 2, 40), with the 2.1 detail keys (`OS-FLV-EXT-DATA:ephemeral`,
    `OS-FLV-DISABLED:disabled`, `os-flavor-access:is_public`, `rxtx_factor`, `swap` "").
  * Images (Nova's image proxy): `GET /images` (`?name=` exact), `/images/detail`,
    `/images/{id}` (404 "Image not found."): "cirros"
    5f4b9c2e-8a1d-4e6b-9c3f-0a7d2e1b4c01 and "ubuntu-22.04"
    9d1e7a3b-2c4f-4b8e-a6d0-3f5c8b2e7a02, ACTIVE, with `minRam`, `minDisk`, `progress`, `metadata`,
    `OS-EXT-IMG-SIZE:size`, and an `alternate` link to an unresolvable glance.invalid.
  * `POST /servers` `{"server": {...}}` (plus optional top-level `os:scheduler_hints`,
    ignored) → 202 `{"server": {"id", "links", "adminPass", "OS-DCF:diskConfig",
    "security_groups"}}` and a `Location` header (the self link). Checked like Nova's
    2.1 schema: `name` (1-255 printable, no leading/trailing whitespace) and `flavorRef`
    required (flavorRef may be an id or a URL ending in one; unknown → 400 "Invalid
    flavorRef provided."), `imageRef` a UUID (missing → 400 "Missing imageRef
    attribute", unknown → 400 "Can not find requested image"), `networks` a list of
    `{"uuid"|"port", "fixed_ip"?}` with UUIDs, `key_name`, `user_data` (base64 that must
    decode, at most 65535 characters), `availability_zone` (one of `--availability-zone`,
    default `nova`; else 400 "The requested availability zone is not available"),
    `metadata` (keys of `[a-zA-Z0-9-_:. ]{1,255}`, values strings of at most 255
    characters), `adminPass`, `security_groups` [{"name"}], `config_drive`, `accessIPv4`,
    `accessIPv6`, `OS-DCF:diskConfig` AUTO|MANUAL, `personality` (ignored),
    `min_count`/`max_count` (1 only); any other key → 400 "Additional properties are not
    allowed ('k' was unexpected)". Schema messages follow Nova's "Invalid input for
    field/attribute F. Value: V. M".
  * A new server is BUILD (`OS-EXT-STS:task_state` "spawning", `addresses` {}) and
    becomes ACTIVE after `--build-seconds` (float, default 1) with `addresses`
    `{"private": [{"addr": "198.51.100.N", "version": 4, "OS-EXT-IPS:type": "fixed",
    "OS-EXT-IPS-MAC:mac_addr"}, {"addr": "2001:db8::N", "version": 6, ...}]}` (N the
    creation number, IPv4 wrapping after 254; documentation ranges nobody connects to),
    `OS-SRV-USG:launched_at`, power_state 1. States are computed when asked, so the dump
    shows them as of the last request.
  * `--fail-creates N`: the first N authenticated `POST /servers` (whatever their body)
    answer 500 computeFault and create nothing. `--max-servers N`: a create beyond N
    servers not yet gone (a slow delete still counts) in the project → 403 "Quota exceeded for instances:
    Requested 1, but already used N of N instances".
  * `GET /servers` → `{"servers": [{"id", "name", "links"}]}`; `GET /servers/detail` →
    full objects: id, name, status, tenant_id, user_id, metadata, hostId, image
    {id, links}, flavor {id, links}, created, updated, addresses, accessIPv4/6, links,
    key_name, config_drive, progress (BUILD/ACTIVE), security_groups,
    OS-DCF:diskConfig, OS-EXT-AZ:availability_zone, OS-EXT-STS:task_state/vm_state/
    power_state, OS-SRV-USG:launched_at/terminated_at,
    os-extended-volumes:volumes_attached, and `fault` {code, message, created} when
    ERROR. Newest first. Filters: `?name=` a regular expression searched in the name
    (like Nova; an invalid one is a plain substring), `?status=` (case-insensitive; an
    unknown status gives an empty list like 2.1), `?limit=` / `?marker=` (400 "marker
    [X] not found"; a full page gets a `servers_links` next link); other parameters are
    ignored, like Nova for a non-admin at 2.1.
  * `GET /servers/{id}` → `{"server": {...}}`; 404 itemNotFound "Instance X could not be
    found." when unknown, deleted or of another project.
  * `DELETE /servers/{id}` → 204 (again 204 while a slow delete runs); 404 when unknown.
  * `POST /servers/{id}/action` `{"os-getConsoleOutput": {"length": N|"N"|null}}` (-1 or
    null for all) → 200 `{"output": "..."}`: kernel lines while BUILD (and for a
    `fake_error` server), the whole boot with cloud-init, the server's address and
    `<hostname> login:` once ACTIVE (hostname: the name sanitized like Nova, i.e. the name
    itself for a lowercase DNS-safe one); 409 "Instance X is not ready" for a
    `fake_no_valid_host` server; 404 when unknown. Any other action → 400 "There is no
    such action: A".
  * `--dump FILE`: after every request (before its answer is sent), written atomically:
    `{"servers": [detail objects, plus "deleted": bool, "user_data", "networks" (as
    sent), "delete_requests" (DELETEs received, refused ones too)], "requests":
    [{"method", "path" (with the query), "status"}]}`; deleted servers are kept with
    status DELETED.

Behaviour hooks, through the server's `metadata` at create (like mimic; they stay visible
in the metadata; a malformed value, or a `fake_*` key not listed here, → 400
"fake_nova: ...", so a misspelt hook cannot pass unnoticed):
  * `fake_build_seconds`: S (a float >= 0) instead of `--build-seconds`.
  * `fake_error`: MSG — after the build time the server is ERROR with `fault`
    `{"code": 500, "message": MSG, "created"}`.
  * `fake_no_valid_host`: any value — after the build time the server is ERROR with fault
    500 "No valid host was found. There are not enough hosts available." and no host
    (`hostId` ""); wins over `fake_error`.
  * `fake_create_status`: "403" | "409" | "413" | "500" — the create answers that instead
    and creates nothing: 403 `forbidden` "Quota exceeded for instances: Requested 1, but
    already used 10 of 10 instances", 409 `conflictingRequest` "Multiple possible
    networks found, use a Network ID to be more specific.", 413 `overLimit` with the same
    quota message and `"retryAfter": "0"` plus `Retry-After: 0` (how Nova's legacy v2
    answered a quota), 500 `computeFault` "Unexpected API
    Error. Please report this at http://bugs.launchpad.net/nova/ ...\n<class
    'oslo_db.exception.DBError'>".
    Checked after the flavor, image and zone lookups.
  * `fake_delete_seconds`: S — an accepted DELETE leaves the server listed for S seconds
    with its status of that moment (ACTIVE, say) and `OS-EXT-STS:task_state` "deleting",
    then it is gone (404). Without it a DELETE removes the server at once.
  * `fake_delete_500_times`: N — the first N DELETEs answer 500 computeFault.
  * `fake_hang`: "create" | "get" | "delete" — the first such request of this run's servers
    (by their `rollci_run` tag; of this server when untagged) is carried out (the server
    made, shown, deleted), then its answer is held back
    `fake_hang_seconds` (default 20): a Nova API that took the request and hangs past the
    client's timeout (the fault matrix, `tests/it/faults/`).
  * `fake_delete_409_times`: N — the next N DELETEs (after the 500s) answer 409
    conflictingRequest "Cannot 'delete' instance ID while it is in task_state T" (T the
    current task_state, or "migrating" when there is none). Refused DELETEs change
    nothing.

Limits (it is not Nova):
  * microversion 2.1 only (no 2.47 flavor objects, tags, descriptions, 2.37 "auto"
    networks...), and no legacy `/v2`; `GET /` lists v2.1 alone;
  * no server actions but the console output (no reboot, stop, start, resize, rebuild),
    no PUT of a server (405), no server metadata/IP/interface subresources, keypairs,
    limits, quotas API, availability-zone API, server groups, volumes or
    block_device_mapping (400 "fake_nova: ..."), no `min_count`/`max_count` above 1;
  * networks, ports, fixed IPs, key names, security groups and scheduler hints are
    accepted without any check that they exist; every address is on network "private";
  * no policy: any valid token may do anything in its project, admin or not; no admin
    views (`OS-EXT-SRV-ATTR:*`, `?all_tenants`, `?deleted`), no `changes-since`;
  * hosts and quotas are imaginary: `hostId` is a hash of the project and one fake host,
    nothing is booted, nobody answers on the addresses, the console output is canned;
  * `fake_no_valid_host` fails after the build time like any server (real scheduling
    failures are usually quicker); ERROR servers have no addresses;
  * the request size limit answers a JSON overLimit (Nova's middleware answers text);
  * no TLS, no HEAD; state is in memory only (plus the dump) and lost at exit.
"""

import argparse
import base64
import binascii
import datetime
import hashlib
import json
import os
import re
import secrets
import signal
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 114688
CACHE_SECONDS = 5.0
VERSION_UPDATED = "2013-07-23T11:33:21Z"
FAKE_HOST = "fake-compute-1"

FLAVORS = [
    {"id": "1", "name": "m1.tiny", "ram": 512, "vcpus": 1, "disk": 1},
    {"id": "2", "name": "m1.small", "ram": 2048, "vcpus": 1, "disk": 20},
    {"id": "3", "name": "m1.medium", "ram": 4096, "vcpus": 2, "disk": 40},
]
CIRROS_ID = "5f4b9c2e-8a1d-4e6b-9c3f-0a7d2e1b4c01"
UBUNTU_ID = "9d1e7a3b-2c4f-4b8e-a6d0-3f5c8b2e7a02"
IMAGES = [
    {"id": CIRROS_ID, "name": "cirros", "size": 21430272, "minDisk": 1, "minRam": 0,
     "created": "2024-01-15T10:00:00Z", "login": "login as 'cirros' user. default password: 'gocubsgo'. use 'sudo' for root."},
    {"id": UBUNTU_ID, "name": "ubuntu-22.04", "size": 679772160, "minDisk": 3, "minRam": 0,
     "created": "2024-01-15T10:05:00Z", "login": "Ubuntu 22.04.4 LTS {host} ttyS0"},
]

FAULT_NAMES = {400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound",
               405: "badMethod", 409: "conflictingRequest", 413: "overLimit",
               415: "badMediaType", 429: "overLimit", 501: "notImplemented",
               503: "serviceUnavailable"}
UNEXPECTED = ("Unexpected API Error. Please report this at http://bugs.launchpad.net/nova/ "
              "and attach the Nova API log if possible.\n<class 'oslo_db.exception.DBError'>")
NO_VALID_HOST = "No valid host was found. There are not enough hosts available."
UNAUTHORIZED = "The request you have made requires authentication."
SERVER_KEYS = {"name", "imageRef", "flavorRef", "adminPass", "metadata", "networks",
               "OS-DCF:diskConfig", "accessIPv4", "accessIPv6", "personality",
               "availability_zone", "key_name", "user_data", "security_groups",
               "config_drive", "min_count", "max_count", "block_device_mapping",
               "block_device_mapping_v2", "return_reservation_id"}
UUID_RE = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}")
META_KEY_RE = re.compile(r"[a-zA-Z0-9\-_:. ]{1,255}")
RESOURCES = ("servers", "flavors", "images")
HOOKS = ("fake_build_seconds", "fake_error", "fake_no_valid_host", "fake_create_status",
         "fake_delete_seconds", "fake_delete_500_times", "fake_delete_409_times", "fake_hang",
         "fake_hang_seconds")

T0_MONO, T0_WALL = time.monotonic(), time.time()
# The (request, run) pairs whose answer was held back already (the `fake_hang` hook).
HUNG, HUNG_LOCK = set(), threading.Lock()


def wall(mono):
    return T0_WALL + (mono - T0_MONO)


def iso(mono):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall(mono)))


def iso_usec(mono):
    return datetime.datetime.fromtimestamp(wall(mono), datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%f")


class Reply(Exception):
    """An answer raised from anywhere: status, JSON body (or None) and extra headers."""

    def __init__(self, status, body, headers=()):
        super().__init__(status)
        self.status, self.body, self.headers = status, body, list(headers)


def fault(status, message, headers=()):
    return Reply(status, {FAULT_NAMES.get(status, "computeFault"): {"code": status, "message": message}}, headers)


def invalid(field, value, message):
    """Nova's jsonschema message (the field is the last element of the error's path)."""
    if field is None:
        return fault(400, message)
    return fault(400, f"Invalid input for field/attribute {field}. Value: {value}. {message}")


def hostname_of(name):
    """Nova's sanitize_hostname."""
    host = name.lower().replace(" ", "-").replace("_", "-")
    host = re.sub(r"[^\w.-]+", "", host, flags=re.ASCII)
    host = host.strip(".-")[:63].rstrip(".-")
    return host or "server"


class Ctx:
    """One request's identity and link prefixes."""

    def __init__(self, host, url_project, project_id, user_id):
        prefix = f"/{url_project}" if url_project else ""
        self.api = f"http://{host}/v2.1{prefix}"
        self.bookmark = f"http://{host}{prefix}"
        self.project_id = project_id
        self.user_id = user_id

    def links(self, kind, ident):
        return [{"href": f"{self.api}/{kind}/{ident}", "rel": "self"},
                {"href": f"{self.bookmark}/{kind}/{ident}", "rel": "bookmark"}]

    def bookmark_only(self, kind, ident):
        return [{"href": f"{self.bookmark}/{kind}/{ident}", "rel": "bookmark"}]


class Server:
    def __init__(self, seq, spec, project_id, user_id, now, build_seconds):
        self.seq = seq
        self.id = str(uuid.uuid4())
        self.spec = spec
        self.name = spec["name"]
        self.project_id, self.user_id = project_id, user_id
        self.metadata = spec.get("metadata") or {}
        self.created = now
        self.ready_at = now + build_seconds
        self.no_valid_host = "fake_no_valid_host" in self.metadata
        if self.no_valid_host:
            self.fault_message = NO_VALID_HOST
        else:
            self.fault_message = self.metadata.get("fake_error")
        self.delete_seconds = float(self.metadata.get("fake_delete_seconds", 0))
        self.delete_500_left = int(self.metadata.get("fake_delete_500_times", 0))
        self.delete_409_left = int(self.metadata.get("fake_delete_409_times", 0))
        self.hang = self.metadata.get("fake_hang")
        self.hang_seconds = float(self.metadata.get("fake_hang_seconds", 20))
        self.delete_requests = 0
        self.delete_started = None
        self.deleted_at = None
        self.frozen = None

    def hold(self, request):
        """Holds the answer to the first `request` of the `fake_hang` hook back."""
        key = (request, self.metadata.get("rollci_run") or self.id)
        with HUNG_LOCK:
            first = self.hang == request and key not in HUNG
            HUNG.add(key)
        if first:
            time.sleep(self.hang_seconds)

    def deleted(self, now):
        return self.deleted_at is not None and now >= self.deleted_at

    def base_status(self, now):
        if now < self.ready_at:
            return "BUILD"
        return "ERROR" if self.fault_message else "ACTIVE"

    def status(self, now):
        if self.deleted(now):
            return "DELETED"
        if self.delete_started is not None:
            return self.frozen
        return self.base_status(now)

    def task_state(self, now):
        if self.deleted(now):
            return None
        if self.delete_started is not None:
            return "deleting"
        return "spawning" if self.status(now) == "BUILD" else None

    def addresses(self):
        n = (self.seq - 1) % 254 + 1
        mac = f"fa:16:3e:{(self.seq >> 16) & 255:02x}:{(self.seq >> 8) & 255:02x}:{self.seq & 255:02x}"
        return {"private": [
            {"addr": f"198.51.100.{n}", "version": 4, "OS-EXT-IPS:type": "fixed",
             "OS-EXT-IPS-MAC:mac_addr": mac},
            {"addr": f"2001:db8::{self.seq:x}", "version": 6, "OS-EXT-IPS:type": "fixed",
             "OS-EXT-IPS-MAC:mac_addr": mac},
        ]}

    def view(self, now, ctx):
        status = self.status(now)
        shown = self.frozen if status == "DELETED" else status
        until = self.delete_started if self.delete_started is not None else now
        launched = not self.fault_message and self.ready_at <= until
        on_host = not self.no_valid_host and self.ready_at <= until
        times = [self.created]
        if self.ready_at <= until:
            times.append(self.ready_at)
        if self.delete_started is not None:
            times.append(self.delete_started)
        if status == "DELETED":
            times.append(self.deleted_at)
        spec = self.spec
        view = {
            "id": self.id,
            "name": self.name,
            "status": status,
            "tenant_id": self.project_id,
            "user_id": self.user_id,
            "metadata": self.metadata,
            "hostId": hashlib.sha224((self.project_id + FAKE_HOST).encode()).hexdigest() if on_host else "",
            "image": {"id": self.spec["image_id"], "links": ctx.bookmark_only("images", spec["image_id"])},
            "flavor": {"id": spec["flavor_id"], "links": ctx.bookmark_only("flavors", spec["flavor_id"])},
            "created": iso(self.created),
            "updated": iso(max(times)),
            "addresses": self.addresses() if shown == "ACTIVE" else {},
            "accessIPv4": spec.get("accessIPv4", ""),
            "accessIPv6": spec.get("accessIPv6", ""),
            "links": ctx.links("servers", self.id),
            "OS-DCF:diskConfig": spec.get("OS-DCF:diskConfig", "MANUAL"),
            "OS-EXT-AZ:availability_zone": spec["availability_zone"] if not self.no_valid_host else "",
            "config_drive": "True" if spec.get("config_drive") else "",
            "key_name": spec.get("key_name"),
            "OS-SRV-USG:launched_at": iso_usec(self.ready_at) if launched else None,
            "OS-SRV-USG:terminated_at": iso_usec(self.deleted_at) if status == "DELETED" else None,
            "security_groups": [{"name": g} for g in spec["security_groups"]],
            "OS-EXT-STS:task_state": self.task_state(now),
            "OS-EXT-STS:vm_state": {"BUILD": "building", "ACTIVE": "active", "ERROR": "error",
                                    "DELETED": "deleted"}[status],
            "OS-EXT-STS:power_state": 1 if status == "ACTIVE" else 0,
            "os-extended-volumes:volumes_attached": [],
        }
        if status in ("BUILD", "ACTIVE"):
            view["progress"] = 0
        if shown == "ERROR":
            view["fault"] = {"code": 500, "created": iso(self.ready_at), "message": self.fault_message}
        return view

    def console(self, now, length):
        status = self.status(now)
        if self.no_valid_host and status != "BUILD":
            raise fault(409, f"Instance {self.id} is not ready")
        host = hostname_of(self.name)
        image = next(i for i in IMAGES if i["id"] == self.spec["image_id"])
        lines = [
            "[    0.000000] Linux version 5.15.0-105-generic (buildd@fake-nova) #115-Ubuntu SMP",
            "[    0.000000] Command line: BOOT_IMAGE=/vmlinuz root=LABEL=cloudimg-rootfs ro console=tty1 console=ttyS0",
            "[    0.000000] KERNEL supported cpus:",
            "[    0.412873] Run /init as init process",
        ]
        if status not in ("BUILD", "ERROR"):
            addr = self.addresses()["private"][0]["addr"]
            lines += [
                "[    2.816301] EXT4-fs (vda1): mounted filesystem with ordered data mode.",
                "[    4.133512] cloud-init[512]: Cloud-init v. 23.4.4 running 'init-local'. Up 4.10 seconds.",
                f"[    5.902114] cloud-init[598]: ci-info: |  eth0  | True |  {addr}  | 255.255.255.0 | global |",
                f"[    6.004251] cloud-init[598]: Set hostname to <{host}> for instance {self.id}",
                "[    9.771630] cloud-init[803]: Cloud-init v. 23.4.4 finished. Datasource DataSourceOpenStackLocal [net,ver=2].  Up 9.75 seconds",
                "",
                image["login"].format(host=host),
                "",
                f"{host} login: ",
            ]
        if length is not None:
            lines = lines[-length:] if length else []
        return "\n".join(lines)


class App:
    def __init__(self, cfg):
        self.cfg = cfg
        self.lock = threading.Lock()
        self.servers = {}
        self.seq = 0
        self.creates = 0
        self.requests = []
        self.cache = {}
        self.cache_lock = threading.Lock()
        # No proxy for Keystone, whatever the environment says.
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    # --- auth -------------------------------------------------------------------------

    def unauthorized(self):
        headers = [("WWW-Authenticate", f'Keystone uri="{self.cfg.keystone}"')] if self.cfg.keystone else []
        return Reply(401, {"error": {"code": 401, "title": "Unauthorized", "message": UNAUTHORIZED}}, headers)

    def validate(self, token):
        """Keystone's token data {project_id, user_id} or None for an invalid token."""
        key = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        with self.cache_lock:
            hit = self.cache.get(key)
            if hit and hit[0] > now:
                return hit[1]
        request = urllib.request.Request(
            self.cfg.keystone.rstrip("/") + "/auth/tokens",
            headers={"X-Auth-Token": token, "X-Subject-Token": token,
                     "Accept": "application/json", "User-Agent": "fake_nova"})
        ttl = CACHE_SECONDS
        try:
            with self.opener.open(request, timeout=10) as r:
                token_data = json.load(r)["token"]
            info = {"project_id": (token_data.get("project") or {}).get("id"),
                    "user_id": token_data["user"]["id"]}
            expires = token_data.get("expires_at")
            if expires:
                stamp = datetime.datetime.strptime(expires.replace("Z", "").split(".")[0], "%Y-%m-%dT%H:%M:%S")
                left = stamp.replace(tzinfo=datetime.timezone.utc).timestamp() - time.time()
                if left <= 0:
                    info = None
                ttl = max(0.0, min(ttl, left))
        except urllib.error.HTTPError as e:
            if e.code not in (401, 404):
                raise Reply(503, {"error": {"code": 503, "title": "Service Unavailable",
                                            "message": f"Failed to validate the token: identity server answered {e.code}"}})
            info = None
        except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError) as e:
            raise Reply(503, {"error": {"code": 503, "title": "Service Unavailable",
                                        "message": f"Failed to fetch token data from identity server ({type(e).__name__})"}})
        with self.cache_lock:
            self.cache[key] = (time.monotonic() + ttl, info)
        return info

    def identity(self, headers, url_project):
        token = headers.get("X-Auth-Token", "").strip()
        if not token:
            raise self.unauthorized()
        if not self.cfg.keystone:
            return url_project or "fake-project", "fake-user"
        info = self.validate(token)
        if info is None:
            raise self.unauthorized()
        if url_project and url_project != info["project_id"]:
            raise fault(400, f"Malformed request URL: URL's project_id '{url_project}' doesn't match "
                             f"Context's project_id '{info['project_id']}'")
        return info["project_id"] or "", info["user_id"]

    # --- dispatch ---------------------------------------------------------------------

    def dispatch(self, method, raw_path, headers, body, port):
        url = urllib.parse.urlsplit(raw_path)
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        path = url.path.rstrip("/")
        parts = [p for p in path.split("/") if p]
        host = headers.get("Host") or f"127.0.0.1:{port}"
        if not parts or parts == ["v2.1"]:
            if method != "GET":
                raise fault(405, "The method specified is not allowed for this resource.")
            return 200, self.versions(host, single=bool(parts)), []
        if parts[0] != "v2.1":
            raise fault(404, "The resource could not be found.")
        rest = parts[1:]
        url_project = None
        if rest[0] not in RESOURCES:
            url_project, rest = rest[0], rest[1:]
        project_id, user_id = self.identity(headers, url_project)
        check_microversion(headers)
        ctx = Ctx(host, url_project, project_id, user_id)
        extra = [("OpenStack-API-Version", "compute 2.1"), ("X-OpenStack-Nova-API-Version", "2.1"),
                 ("Vary", "OpenStack-API-Version, X-OpenStack-Nova-API-Version")]
        try:
            status, answer, headers_out = self.route(method, rest, query, body, ctx)
        except Reply as e:
            e.headers += extra
            raise
        return status, answer, headers_out + extra

    def route(self, method, rest, query, body, ctx):
        def only(*methods):
            if method not in methods:
                raise fault(405, "The method specified is not allowed for this resource.")

        if not rest:
            raise fault(404, "The resource could not be found.")
        kind, rest = rest[0], rest[1:]
        if kind == "flavors" and len(rest) <= 1:
            only("GET")
            return 200, self.flavors(rest, ctx), []
        if kind == "images" and len(rest) <= 1:
            only("GET")
            return 200, self.images(rest, query, ctx), []
        if kind == "servers":
            if not rest:
                only("GET", "POST")
                if method == "POST":
                    return self.create(json_body(body), ctx)
                return 200, self.list_servers(query, ctx, detail=False), []
            if rest == ["detail"]:
                only("GET")
                return 200, self.list_servers(query, ctx, detail=True), []
            if len(rest) == 1:
                only("GET", "DELETE")
                if method == "DELETE":
                    return self.delete(rest[0], ctx)
                with self.lock:
                    server = self.find(rest[0], ctx)
                    answer = {"server": server.view(time.monotonic(), ctx)}
                server.hold("get")
                return 200, answer, []
            if len(rest) == 2 and rest[1] == "action":
                only("POST")
                return self.action(rest[0], json_body(body), ctx)
        raise fault(404, "The resource could not be found.")

    # --- documents --------------------------------------------------------------------

    @staticmethod
    def versions(host, single):
        version = {
            "id": "v2.1", "status": "CURRENT", "version": "2.1", "min_version": "2.1",
            "updated": VERSION_UPDATED,
            "links": [{"href": f"http://{host}/v2.1/", "rel": "self"}],
        }
        if not single:
            return {"versions": [version]}
        version["links"].append({"href": "http://docs.openstack.org/", "rel": "describedby", "type": "text/html"})
        version["media-types"] = [{"base": "application/json",
                                   "type": "application/vnd.openstack.compute+json;version=2.1"}]
        return {"version": version}

    @staticmethod
    def flavor_view(f, ctx, detail):
        view = {"id": f["id"], "name": f["name"], "links": ctx.links("flavors", f["id"])}
        if detail:
            view.update({"ram": f["ram"], "vcpus": f["vcpus"], "disk": f["disk"],
                         "OS-FLV-EXT-DATA:ephemeral": 0, "OS-FLV-DISABLED:disabled": False,
                         "os-flavor-access:is_public": True, "rxtx_factor": 1.0, "swap": ""})
        return view

    def flavors(self, rest, ctx):
        if not rest:
            return {"flavors": [self.flavor_view(f, ctx, False) for f in FLAVORS]}
        if rest == ["detail"]:
            return {"flavors": [self.flavor_view(f, ctx, True) for f in FLAVORS]}
        for f in FLAVORS:
            if f["id"] == rest[0]:
                return {"flavor": self.flavor_view(f, ctx, True)}
        raise fault(404, f"Flavor {rest[0]} could not be found.")

    @staticmethod
    def image_view(i, ctx, detail):
        links = ctx.links("images", i["id"]) + [{
            "href": f"http://glance.invalid:9292/images/{i['id']}", "rel": "alternate",
            "type": "application/vnd.openstack.image"}]
        view = {"id": i["id"], "name": i["name"], "links": links}
        if detail:
            view.update({"status": "ACTIVE", "progress": 100, "minRam": i["minRam"],
                         "minDisk": i["minDisk"], "metadata": {}, "created": i["created"],
                         "updated": i["created"], "OS-EXT-IMG-SIZE:size": i["size"]})
        return view

    def images(self, rest, query, ctx):
        names = query.get("name")
        chosen = [i for i in IMAGES if not names or i["name"] == names[-1]]
        if not rest:
            return {"images": [self.image_view(i, ctx, False) for i in chosen]}
        if rest == ["detail"]:
            return {"images": [self.image_view(i, ctx, True) for i in chosen]}
        for i in IMAGES:
            if i["id"] == rest[0]:
                return {"image": self.image_view(i, ctx, True)}
        raise fault(404, "Image not found.")

    # --- servers ----------------------------------------------------------------------

    def visible(self, ctx, now):
        return [s for s in self.servers.values()
                if not s.deleted(now) and (not self.cfg.keystone or s.project_id == ctx.project_id)]

    def find(self, server_id, ctx):
        now = time.monotonic()
        server = self.servers.get(server_id)
        if server is None or server not in self.visible(ctx, now):
            raise fault(404, f"Instance {server_id} could not be found.")
        return server

    def list_servers(self, query, ctx, detail):
        now = time.monotonic()
        with self.lock:
            servers = sorted(self.visible(ctx, now), key=lambda s: -s.seq)
            if "name" in query:
                pattern = query["name"][-1]
                try:
                    rx = re.compile(pattern)
                    servers = [s for s in servers if rx.search(s.name)]
                except re.error:
                    servers = [s for s in servers if pattern in s.name]
            if "status" in query:
                wanted = {v.upper() for v in query["status"]}
                servers = [s for s in servers if s.status(now) in wanted]
            if "marker" in query:
                marker = self.servers.get(query["marker"][-1])
                if marker is None:
                    raise fault(400, f"marker [{query['marker'][-1]}] not found")
                servers = [s for s in servers if s.seq < marker.seq]
            limit = None
            if "limit" in query:
                try:
                    limit = int(query["limit"][-1])
                except ValueError:
                    raise fault(400, "limit param must be an integer")
                if limit < 0:
                    raise fault(400, "limit param must be positive")
            limit = min(limit if limit is not None else 1000, 1000)
            page = servers[:limit]
            if detail:
                items = [s.view(now, ctx) for s in page]
            else:
                items = [{"id": s.id, "name": s.name, "links": ctx.links("servers", s.id)} for s in page]
        answer = {"servers": items}
        if page and len(page) == limit:
            params = {k: v[-1] for k, v in query.items() if k not in ("marker", "limit")}
            params.update(limit=str(limit), marker=page[-1].id)
            path = "servers/detail" if detail else "servers"
            answer["servers_links"] = [{"href": f"{ctx.api}/{path}?{urllib.parse.urlencode(params)}", "rel": "next"}]
        return answer

    def create(self, body, ctx):
        with self.lock:
            self.creates += 1
            if self.creates <= self.cfg.fail_creates:
                raise fault(500, UNEXPECTED)
        spec = check_create(body, self.cfg.availability_zone)
        meta = spec.get("metadata") or {}
        build_seconds = check_hooks(meta, self.cfg.build_seconds)
        if not any(f["id"] == spec["flavor_id"] for f in FLAVORS):
            raise fault(400, "Invalid flavorRef provided.")
        if not any(i["id"] == spec["image_id"] for i in IMAGES):
            raise fault(400, "Can not find requested image")
        wanted = meta.get("fake_create_status")
        if wanted == "403":
            raise fault(403, "Quota exceeded for instances: Requested 1, but already used 10 of 10 instances")
        if wanted == "409":
            raise fault(409, "Multiple possible networks found, use a Network ID to be more specific.")
        if wanted == "413":
            reply = fault(413, "Quota exceeded for instances: Requested 1, but already used 10 of 10 instances",
                          [("Retry-After", "0")])
            reply.body["overLimit"]["retryAfter"] = "0"
            raise reply
        if wanted == "500":
            raise fault(500, UNEXPECTED)
        now = time.monotonic()
        with self.lock:
            if self.cfg.max_servers is not None:
                used = sum(1 for s in self.servers.values()
                           if s.project_id == ctx.project_id and not s.deleted(now))
                if used >= self.cfg.max_servers:
                    raise fault(403, f"Quota exceeded for instances: Requested 1, but already used "
                                     f"{used} of {self.cfg.max_servers} instances")
            self.seq += 1
            server = Server(self.seq, spec, ctx.project_id, ctx.user_id, now, build_seconds)
            self.servers[server.id] = server
        links = ctx.links("servers", server.id)
        server.hold("create")
        return 202, {"server": {
            "id": server.id, "links": links,
            "adminPass": spec.get("adminPass") or admin_password(),
            "OS-DCF:diskConfig": spec.get("OS-DCF:diskConfig", "MANUAL"),
            "security_groups": [{"name": g} for g in spec["security_groups"]],
        }}, [("Location", links[0]["href"])]

    def delete(self, server_id, ctx):
        with self.lock:
            server = self.find(server_id, ctx)
            now = time.monotonic()
            server.delete_requests += 1
            if server.delete_500_left > 0:
                server.delete_500_left -= 1
                raise fault(500, UNEXPECTED)
            if server.delete_409_left > 0:
                server.delete_409_left -= 1
                task = server.task_state(now) or "migrating"
                raise fault(409, f"Cannot 'delete' instance {server.id} while it is in task_state {task}")
            if server.delete_started is None:
                server.frozen = server.base_status(now)
                server.delete_started = now
                server.deleted_at = now + server.delete_seconds
        server.hold("delete")
        return 204, None, []

    def action(self, server_id, body, ctx):
        if not isinstance(body, dict) or not body:
            raise fault(400, "Malformed request body")
        name = next(iter(body))
        with self.lock:
            server = self.find(server_id, ctx)
            if name != "os-getConsoleOutput":
                raise fault(400, f"There is no such action: {name}")
            args = body[name]
            if args is None:
                args = {}
            if not isinstance(args, dict):
                raise invalid(None, args, f"{args!r} is not of type 'object'")
            extra = set(args) - {"length"}
            if extra:
                raise invalid("os-getConsoleOutput", args,
                              f"Additional properties are not allowed ({', '.join(repr(k) for k in sorted(extra))} was unexpected)")
            length = args.get("length")
            if length is not None:
                if isinstance(length, bool) or not (
                        isinstance(length, int) or (isinstance(length, str) and re.fullmatch(r"-?[0-9]+", length))):
                    raise invalid("length", length, f"{length!r} is not valid under any of the given schemas")
                length = int(length)
                if length < -1:
                    raise invalid("length", length, f"{length} is less than the minimum of -1")
                if length == -1:
                    length = None
            return 200, {"output": server.console(time.monotonic(), length)}, []

    # --- dump -------------------------------------------------------------------------

    def write_dump(self, port):
        if not self.cfg.dump:
            return
        now = time.monotonic()
        ctx = Ctx(f"127.0.0.1:{port}", None, None, None)
        servers = []
        for s in sorted(self.servers.values(), key=lambda s: s.seq):
            view = s.view(now, ctx)
            view.update(deleted=s.deleted(now), user_data=s.spec.get("user_data"),
                        networks=s.spec.get("networks"), delete_requests=s.delete_requests)
            servers.append(view)
        folder = os.path.dirname(os.path.abspath(self.cfg.dump))
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".fake-nova-")
        with os.fdopen(fd, "w") as f:
            json.dump({"servers": servers, "requests": self.requests}, f, indent=1)
        os.replace(tmp, self.cfg.dump)


def admin_password():
    alphabet = "23456789abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"
    return "".join(secrets.choice(alphabet) for _ in range(12))


def check_microversion(headers):
    wanted = None
    for part in (headers.get("OpenStack-API-Version") or "").split(","):
        bits = part.split()
        if len(bits) == 2 and bits[0].lower() == "compute":
            wanted = bits[1]
    if wanted is None:
        wanted = headers.get("X-OpenStack-Nova-API-Version")
    if wanted is None or wanted.strip().lower() == "latest":
        return
    wanted = wanted.strip()
    if not re.fullmatch(r"([1-9][0-9]*)\.([1-9][0-9]*|0)", wanted):
        raise fault(400, f"API Version String {wanted} is of invalid format. Must be of format MajorNum.MinorNum.")
    if wanted != "2.1":
        raise fault(406, f"Version {wanted} is not supported by the API. Minimum is 2.1 and maximum is 2.1.")


def json_body(body):
    if not body:
        raise fault(400, "Malformed request body")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise fault(400, "Malformed request body")


def is_uuid(value):
    return isinstance(value, str) and UUID_RE.fullmatch(value) is not None


def check_create(body, zones):
    """Nova 2.1's create schema (the parts this fake knows); returns the server spec with
    flavor_id, image_id, availability_zone and security_groups filled in."""
    if not isinstance(body, dict):
        raise invalid(None, body, f"{body!r} is not of type 'object'")
    if "server" not in body:
        raise invalid(None, body, "'server' is a required property")
    extra = set(body) - {"server", "os:scheduler_hints", "OS-SCH-HNT:scheduler_hints"}
    if extra:
        raise invalid(None, body, f"Additional properties are not allowed ({', '.join(repr(k) for k in sorted(extra))} was unexpected)")
    server = body["server"]
    if not isinstance(server, dict):
        raise invalid("server", server, f"{server!r} is not of type 'object'")
    for key in ("name", "flavorRef"):
        if key not in server:
            raise invalid("server", server, f"'{key}' is a required property")
    extra = set(server) - SERVER_KEYS
    if extra:
        raise invalid("server", server, f"Additional properties are not allowed ({', '.join(repr(k) for k in sorted(extra))} was unexpected)")
    for key in ("block_device_mapping", "block_device_mapping_v2", "return_reservation_id"):
        if key in server:
            raise fault(400, f"fake_nova: {key} is not supported")

    name = server["name"]
    if not isinstance(name, str):
        raise invalid("name", name, f"{name!r} is not of type 'string'")
    if not 1 <= len(name) <= 255:
        raise invalid("name", name, f"{name!r} is {'too short' if not name else 'too long'}")
    if name != name.strip() or not name.isprintable():
        raise fault(400, "An invalid 'name' value was provided. The name must be: printable "
                         "characters. Can not start or end with whitespace.")

    flavor = server["flavorRef"]
    if isinstance(flavor, bool) or not isinstance(flavor, (str, int)):
        raise invalid("flavorRef", flavor, f"{flavor!r} is not of type 'string', 'integer'")
    flavor = str(flavor)
    if not flavor:
        raise invalid("flavorRef", flavor, "'' is too short")
    flavor_id = flavor.rstrip("/").rsplit("/", 1)[-1]

    image = server.get("imageRef")
    if image is not None and not (is_uuid(image) or image == ""):
        raise invalid("imageRef", image, f"{image!r} is not valid under any of the given schemas")
    if not image:
        raise fault(400, "Missing imageRef attribute")

    metadata = server.get("metadata", {})
    if not isinstance(metadata, dict):
        raise invalid("metadata", metadata, f"{metadata!r} is not of type 'object'")
    bad = [k for k in metadata if not META_KEY_RE.fullmatch(k)]
    if bad:
        raise invalid("metadata", metadata, f"Additional properties are not allowed ({', '.join(repr(k) for k in bad)} was unexpected)")
    for k, v in metadata.items():
        if not isinstance(v, str):
            raise invalid(k, v, f"{v!r} is not of type 'string'")
        if len(v) > 255:
            raise invalid(k, v, f"{v!r} is too long")

    networks = server.get("networks")
    if networks is not None:
        if not isinstance(networks, list):
            raise invalid("networks", networks, f"{networks!r} is not of type 'array'")
        for net in networks:
            if not isinstance(net, dict):
                raise invalid("networks", networks, f"{net!r} is not of type 'object'")
            extra = set(net) - {"uuid", "port", "fixed_ip"}
            if extra:
                raise invalid("networks", net, f"Additional properties are not allowed ({', '.join(repr(k) for k in sorted(extra))} was unexpected)")
            for key in ("uuid", "port"):
                if net.get(key) is not None and not is_uuid(net[key]):
                    raise fault(400, f"Bad networks format: network uuid is not in proper format ({net[key]})")
            if net.get("uuid") is None and net.get("port") is None:
                raise fault(400, "Bad network format: missing 'uuid'")

    key_name = server.get("key_name")
    if key_name is not None and (not isinstance(key_name, str) or not 1 <= len(key_name) <= 255):
        raise invalid("key_name", key_name, f"{key_name!r} is not a valid key name")

    user_data = server.get("user_data")
    if user_data is not None:
        if not isinstance(user_data, str):
            raise invalid("user_data", user_data, f"{user_data!r} is not of type 'string'")
        if len(user_data) > 65535:
            raise invalid("user_data", user_data, f"{user_data!r} is too long")
        try:
            base64.b64decode(re.sub(r"\s+", "", user_data), validate=True)
        except (binascii.Error, ValueError):
            raise invalid("user_data", user_data, f"{user_data!r} is not a 'base64'")

    zone = server.get("availability_zone")
    if zone is not None and not isinstance(zone, str):
        raise invalid("availability_zone", zone, f"{zone!r} is not of type 'string'")
    if zone and zone not in zones:
        raise fault(400, "The requested availability zone is not available")

    groups = server.get("security_groups", [{"name": "default"}])
    if not isinstance(groups, list) or not all(isinstance(g, dict) and isinstance(g.get("name"), str) for g in groups):
        raise invalid("security_groups", groups, f"{groups!r} is not valid under any of the given schemas")

    disk = server.get("OS-DCF:diskConfig")
    if disk is not None and disk not in ("AUTO", "MANUAL"):
        raise invalid("OS-DCF:diskConfig", disk, f"{disk!r} is not one of ['AUTO', 'MANUAL']")
    for key in ("adminPass", "accessIPv4", "accessIPv6"):
        if key in server and not isinstance(server[key], str):
            raise invalid(key, server[key], f"{server[key]!r} is not of type 'string'")
    for key in ("min_count", "max_count"):
        if key in server and str(server[key]) != "1":
            raise fault(400, f"fake_nova: only {key} 1 is supported")

    spec = dict(server)
    spec.update(flavor_id=flavor_id, image_id=image.lower() if "-" in image else str(uuid.UUID(image)),
                availability_zone=zone or zones[0], security_groups=[g["name"] for g in groups],
                metadata=metadata)
    return spec


def check_hooks(meta, build_seconds):
    """Checks the fake_* metadata; returns the build time."""
    def number(key, kind):
        try:
            value = kind(meta[key])
        except ValueError:
            raise fault(400, f"fake_nova: metadata {key} must be a {'number' if kind is float else 'whole number'} >= 0, not {meta[key]!r}")
        if value < 0 or value != value:
            raise fault(400, f"fake_nova: metadata {key} must be >= 0, not {meta[key]!r}")
        return value

    unknown = [k for k in meta if k.startswith("fake_") and k not in HOOKS]
    if unknown:
        raise fault(400, f"fake_nova: unknown hook {unknown[0]!r} (known: {', '.join(HOOKS)})")
    if "fake_build_seconds" in meta:
        build_seconds = number("fake_build_seconds", float)
    if meta.get("fake_hang", "get") not in ("create", "get", "delete"):
        raise fault(400, f"fake_nova: metadata fake_hang must be create, get or delete, not {meta['fake_hang']!r}")
    for key, kind in (("fake_delete_seconds", float), ("fake_delete_500_times", int), ("fake_delete_409_times", int),
                      ("fake_hang_seconds", float)):
        if key in meta:
            number(key, kind)
    if meta.get("fake_create_status", "403") not in ("403", "409", "413", "500"):
        raise fault(400, f"fake_nova: metadata fake_create_status must be 403, 409, 413 or 500, not {meta['fake_create_status']!r}")
    return build_seconds


class Handler(BaseHTTPRequestHandler):
    server_version = "fake-nova/2.1"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # one line per request is written by handle_any
        pass

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks, size = [], 0
            while True:
                line = self.rfile.readline(1024)
                try:
                    n = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    self.close_connection = True
                    raise fault(400, "Malformed chunked body")
                if n == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                size += n
                if size > MAX_BODY:
                    self.close_connection = True
                    raise fault(413, "Request is too large.")
                chunks.append(self.rfile.read(n))
                self.rfile.readline(1024)
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True
            raise fault(413, "Request is too large.")
        return self.rfile.read(length) if length else b""

    def handle_any(self):
        app = self.server.app
        request_id = f"req-{uuid.uuid4()}"
        headers = []
        try:
            body = self.read_body()
            ctype = self.headers.get("Content-Type")
            if body and ctype and ctype.split(";")[0].strip().lower() != "application/json":
                raise fault(415, "Unsupported Content-Type")
            status, answer, headers = app.dispatch(self.command, self.path, self.headers, body,
                                                   self.server.server_address[1])
        except Reply as e:
            status, answer, headers = e.status, e.body, e.headers
        except Exception:
            traceback.print_exc(file=sys.stderr)
            status, answer = 500, {"computeFault": {"code": 500, "message": UNEXPECTED}}
        # The dump is written before the answer, so a client that got its answer reads it.
        with app.lock:
            app.requests.append({"method": self.command, "path": self.path, "status": status})
            app.write_dump(self.server.server_address[1])
        data = b"" if answer is None else json.dumps(answer).encode()
        self.send_response(status)
        if answer is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-openstack-request-id", request_id)
        self.send_header("x-compute-request-id", request_id)
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        print(f"{self.command} {self.path} {status}", file=sys.stderr, flush=True)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keystone", metavar="URL", help="Keystone v3 base URL to validate tokens against")
    parser.add_argument("--build-seconds", type=float, default=1.0)
    parser.add_argument("--fail-creates", type=int, default=0, metavar="N")
    parser.add_argument("--max-servers", type=int, metavar="N")
    parser.add_argument("--availability-zone", action="append", metavar="Z")
    parser.add_argument("--dump", metavar="FILE")
    cfg = parser.parse_args()
    if cfg.build_seconds < 0:
        parser.error("--build-seconds must be >= 0")
    cfg.availability_zone = cfg.availability_zone or ["nova"]
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.app = App(cfg)
    with server.app.lock:
        server.app.write_dump(server.server_address[1])

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()


if __name__ == "__main__":
    sys.exit(main())
