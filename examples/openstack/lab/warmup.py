#!/usr/bin/env python3
"""A node's real work before it goes back into rotation: `warmup.py SERVICE NODE_URL
AUTH_URL SECRETS`.

The readiness check (`GET /v3`, `/`, `/versions`) proves the process answers, not that it
serves: a new process loads its auth plugins, policy, database and cache connections on its
first real requests, and a first request that fails (or two first requests racing in its
threads) would be a user's error at the VIP. So before haproxy gets the node back, this
sends it, on its own address, what the probes and users send, in parallel rounds as wide as
its thread pool: for keystone, a password token issued by the node, a token issued from
that token, and its validation and catalog; for placement and glance, an authenticated
list. Exits 1 naming the request that failed: the node then stays out of rotation and the
upgrade fails here, with the cause, not at the VIP. Stdlib only; passwords never printed.
"""

import sys
from concurrent.futures import ThreadPoolExecutor

from verify import Failed, call, secret, token

ROUNDS = 3
WIDTH = 4


def keystone(node, admin_password):
    subject, _ = token(f"{node}/v3", "admin", admin_password, "admin")
    body = {"auth": {"identity": {"methods": ["token"], "token": {"id": subject}}}}
    _, headers = call("POST", f"{node}/v3/auth/tokens", token=subject, body=body, want=(201,))
    issued = headers["X-Subject-Token"]
    call("GET", f"{node}/v3/auth/tokens", token=subject, headers={"X-Subject-Token": issued})
    call("GET", f"{node}/v3/auth/catalog", token=subject)


def placement(node, admin):
    call("GET", f"{node}/resource_providers", token=admin,
         headers={"OpenStack-API-Version": "placement 1.20"})


def glance(node, admin):
    call("GET", f"{node}/v2/images", token=admin)


def main(argv):
    if len(argv) != 4 or argv[0] not in ("keystone", "placement", "glance"):
        sys.exit(__doc__)
    service, node, auth_url, secrets = argv
    node = node.rstrip("/")
    try:
        password = secret(secrets, "admin")
        if service == "keystone":
            work, arg = keystone, password
        else:
            work = placement if service == "placement" else glance
            arg, _ = token(auth_url.rstrip("/"), "admin", password, "admin")
        # One round alone first: a new process loads lazily (policy rules, plugins,
        # connections), and that is the part its threads must not race through.
        work(node, arg)
        with ThreadPoolExecutor(WIDTH) as pool:
            for _ in range(ROUNDS):
                for done in [pool.submit(work, node, arg) for _ in range(WIDTH)]:
                    done.result()
    except (Failed, OSError, KeyError, ValueError) as e:
        sys.exit(f"warmup.py {service} {node}: {e}")
    print(f"warmup.py: {service} at {node} served {1 + ROUNDS * WIDTH} rounds of real requests")


if __name__ == "__main__":
    main(sys.argv[1:])
