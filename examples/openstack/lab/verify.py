#!/usr/bin/env python3
"""The lab's own data checks through the real APIs: `verify.py PHASE STATE SECRETS AUTH_URL`.

Phase `before` creates, as the admin (password from SECRETS/admin): a project
`rollci-verify`, a user `rollci-verify` (password from SECRETS/verify_user) with the `member`
role on it, and an image `rollci-verify` with 256 KiB of data; it writes their ids and the
data's SHA-256 to STATE (JSON). Phase `after` proves they survived: the user still gets a
project-scoped token that carries `member`, and the image is `active` with the same
`os_hash_value` and the same bytes when downloaded. Prints one JSON line of what it
checked; exits 1 naming the first thing that failed. Stdlib only; passwords never printed.
"""

import hashlib
import json
import os
import random
import sys
import urllib.error
import urllib.parse
import urllib.request

OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
NAME = "rollci-verify"


class Failed(Exception):
    pass


def secret(directory, name):
    with open(os.path.join(directory, name)) as f:
        return f.read().split()[0]


def call(method, url, token=None, body=None, data=None, want=(200,), headers=None):
    headers = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["X-Auth-Token"] = token
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with OPENER.open(request, timeout=60) as r:
            status, text, answer_headers = r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        status, text, answer_headers = e.code, e.read(), e.headers
    except (urllib.error.URLError, OSError) as e:
        raise Failed(f"{method} {url}: {e}")
    if status not in want:
        raise Failed(f"{method} {url} answered {status}: {text[:300]!r}")
    return text, answer_headers


def token(auth_url, user, password, project):
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"id": "default"}}}}}
    text, headers = call("POST", f"{auth_url}/auth/tokens", body=body, want=(201,))
    return headers["X-Subject-Token"], json.loads(text)["token"]


def endpoint(catalog, kind):
    for service in catalog:
        if service["type"] == kind:
            for e in service["endpoints"]:
                if e["interface"] == "public":
                    return e["url"].rstrip("/")
    raise Failed(f"no public `{kind}` endpoint in the catalog")


def first_id(text, key):
    items = json.loads(text)[key]
    return items[0]["id"] if items else None


def ensure(auth_url, admin, key, collection, body):
    query = urllib.parse.urlencode({"name": body["name"]})
    found = first_id(call("GET", f"{auth_url}/{collection}?{query}", admin)[0], collection)
    if found:
        return found
    text, _ = call("POST", f"{auth_url}/{collection}", admin, body={key: body}, want=(201,))
    return json.loads(text)[key]["id"]


def before(auth_url, secrets, state):
    admin, info = token(auth_url, "admin", secret(secrets, "admin"), "admin")
    glance = endpoint(info["catalog"], "image")
    project = ensure(auth_url, admin, "project", "projects",
                     {"name": NAME, "domain_id": "default", "description": "rollci verify"})
    user = ensure(auth_url, admin, "user", "users",
                  {"name": NAME, "domain_id": "default", "default_project_id": project,
                   "password": secret(secrets, "verify_user")})
    member = ensure(auth_url, admin, "role", "roles", {"name": "member"})
    call("PUT", f"{auth_url}/projects/{project}/users/{user}/roles/{member}", admin,
         want=(204,))
    data = random.Random(20261203).randbytes(256 * 1024)
    text, _ = call("POST", f"{glance}/v2/images", admin, want=(201,), body={
        "name": NAME, "disk_format": "raw", "container_format": "bare"})
    image = json.loads(text)["id"]
    call("PUT", f"{glance}/v2/images/{image}/file", admin, data=data, want=(204,),
         headers={"Content-Type": "application/octet-stream"})
    shown = json.loads(call("GET", f"{glance}/v2/images/{image}", admin)[0])
    record = {"project": project, "user": user, "image": image,
              "sha256": hashlib.sha256(data).hexdigest(),
              "os_hash_value": shown.get("os_hash_value"), "status": shown["status"]}
    if shown["status"] != "active":
        raise Failed(f"image {image} is `{shown['status']}` after its upload, not active")
    with open(state, "w") as f:
        json.dump(record, f)
    return record


def after(auth_url, secrets, state):
    with open(state) as f:
        record = json.load(f)
    _, info = token(auth_url, NAME, secret(secrets, "verify_user"), NAME)
    roles = sorted(r["name"] for r in info.get("roles", []))
    if "member" not in roles:
        raise Failed(f"the user's token has roles {roles}, not `member`")
    admin, info = token(auth_url, "admin", secret(secrets, "admin"), "admin")
    glance = endpoint(info["catalog"], "image")
    shown = json.loads(call("GET", f"{glance}/v2/images/{record['image']}", admin)[0])
    if shown["status"] != "active" or shown.get("os_hash_value") != record["os_hash_value"]:
        raise Failed(f"image {record['image']} is `{shown['status']}` with hash "
                     f"{shown.get('os_hash_value')}, was active with {record['os_hash_value']}")
    data, _ = call("GET", f"{glance}/v2/images/{record['image']}/file", admin)
    if hashlib.sha256(data).hexdigest() != record["sha256"]:
        raise Failed(f"image {record['image']}'s data changed ({len(data)} bytes back)")
    return {**record, "user_roles": roles, "data_bytes": len(data)}


def main(argv):
    if len(argv) != 4 or argv[0] not in ("before", "after"):
        sys.exit(__doc__)
    phase, state, secrets, auth_url = argv
    try:
        out = (before if phase == "before" else after)(auth_url.rstrip("/"), secrets, state)
    except (Failed, OSError, KeyError, ValueError) as e:
        sys.exit(f"verify.py {phase}: {e}")
    print(json.dumps({"phase": phase, **out}))


if __name__ == "__main__":
    main(sys.argv[1:])
