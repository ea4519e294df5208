#!/usr/bin/env python3
"""Registers the lab's services in Keystone: `catalog.py AUTH_URL SECRETS REGION SPEC...`.

SPEC is NAME=TYPE=URL (e.g. `placement=placement=http://127.0.0.2:8778`). For each one:
a service user NAME in project `service` (password read from SECRETS/NAME_user, never from
argv) with the `admin` and `service` roles there, a service of TYPE named NAME, and a
`public` and an `internal` endpoint with URL in REGION. Idempotent: what exists is kept (an
endpoint with another URL is updated). The admin's password is read from SECRETS/admin.
Prints one JSON line: the ids it ensured. Stdlib only.
"""

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Failed(Exception):
    pass


def secret(directory, name):
    with open(os.path.join(directory, name)) as f:
        # Ansible's password lookup stores `PASSWORD salt=...` when it salts; take the word.
        return f.read().split()[0]


class Keystone:
    def __init__(self, url, password):
        self.url = url.rstrip("/")
        self.token = None
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"id": "default"}, "password": password}}},
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}
        _, _, headers = self.call("POST", "/v3/auth/tokens", body, (201,))
        self.token = headers["X-Subject-Token"]

    def call(self, method, path, body=None, want=(200,)):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("X-Auth-Token", self.token)
        try:
            with OPENER.open(request, timeout=60) as r:
                text = r.read()
                status, headers = r.status, r.headers
        except urllib.error.HTTPError as e:
            text, status, headers = e.read(), e.code, e.headers
        except (urllib.error.URLError, OSError) as e:
            raise Failed(f"{method} {path}: {e}")
        if status not in want:
            raise Failed(f"{method} {path} answered {status}: {text[:300]!r}")
        return status, (json.loads(text) if text else None), headers

    def find(self, collection, **query):
        q = "&".join(f"{k}={urllib.parse.quote(str(v))}" for k, v in query.items())
        _, answer, _ = self.call("GET", f"/v3/{collection}?{q}")
        return answer[collection]

    def ensure(self, collection, key, match, body):
        found = self.find(collection, **match)
        if found:
            return found[0]["id"]
        _, answer, _ = self.call("POST", f"/v3/{collection}", {key: body}, (201,))
        return answer[key]["id"]


def register(ks, secrets, region, name, kind, url):
    project = ks.ensure("projects", "project", {"name": "service"},
                        {"name": "service", "domain_id": "default"})
    user = ks.ensure("users", "user", {"name": name},
                     {"name": name, "domain_id": "default",
                      "password": secret(secrets, f"{name}_user")})
    for role in ("admin", "service"):
        role_id = ks.ensure("roles", "role", {"name": role}, {"name": role})
        ks.call("PUT", f"/v3/projects/{project}/users/{user}/roles/{role_id}", None, (204,))
    service = ks.ensure("services", "service", {"type": kind, "name": name},
                        {"type": kind, "name": name, "enabled": True})
    endpoints = {e["interface"]: e for e in ks.find("endpoints", service_id=service)
                 if e.get("region_id") == region}
    for interface in ("public", "internal"):
        endpoint = endpoints.get(interface)
        if endpoint is None:
            ks.call("POST", "/v3/endpoints", {"endpoint": {
                "service_id": service, "interface": interface, "region_id": region,
                "url": url, "enabled": True}}, (201,))
        elif endpoint["url"] != url:
            ks.call("PATCH", f"/v3/endpoints/{endpoint['id']}",
                    {"endpoint": {"url": url}}, (200,))
    return {"service": service, "user": user, "project": project}


def main(argv):
    if len(argv) < 4:
        sys.exit(__doc__)
    auth_url, secrets, region, specs = argv[0], argv[1], argv[2], argv[3:]
    try:
        ks = Keystone(auth_url, secret(secrets, "admin"))
        out = {}
        for spec in specs:
            name, kind, url = spec.split("=", 2)
            out[name] = register(ks, secrets, region, name, kind, url)
    except Failed as e:
        sys.exit(f"catalog.py: {e}")
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
