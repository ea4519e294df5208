"""Smoke tests of the VM lab's API through the VIP (haproxy on lb, in front of the guests).

Only health and version: each guest has its own store, so a record written through the VIP
lands on whichever guest answered (the lab's [[persistent]] records go to each node
directly). rollci runs them with `python3 -m subunit.run discover` and reads the subunit v2
stream; the VIP comes from ROLLCI_HOST_LB, the expected release from ROLLCI_EXPECTED_RELEASE,
the guests' names from the ROLLCI_HOST_NODE* variables.
"""

import json
import os
import unittest
import urllib.error
import urllib.request

VIP = os.environ.get("ROLLCI_HOST_LB", "127.0.0.1:8080")
NODES = sorted(k[len("ROLLCI_HOST_"):].lower() for k in os.environ
               if k.startswith("ROLLCI_HOST_NODE"))


def get(path):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://{VIP}{path}", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, None


class SmokeTest(unittest.TestCase):
    def test_healthz(self):
        status, body = get("/healthz")
        self.assertEqual(status, 200)
        self.assertEqual(body["status"], "ok")

    def test_version_is_expected_release(self):
        expected = os.environ.get("ROLLCI_EXPECTED_RELEASE")
        if expected is None:
            self.skipTest("ROLLCI_EXPECTED_RELEASE not set")
        status, body = get("/version")
        self.assertEqual(status, 200)
        self.assertEqual(body["release"], expected)

    def test_every_guest_answers_through_the_vip(self):
        if not NODES:
            self.skipTest("no ROLLCI_HOST_NODE* variables")
        seen = {}
        for _ in range(4 * len(NODES)):
            status, body = get("/version")
            self.assertEqual(status, 200)
            seen[body["node"]] = body["release"]
            if len(seen) == len(NODES):
                break
        self.assertEqual(sorted(seen), NODES)
        self.assertEqual(len(set(seen.values())), 1, f"mixed releases: {seen}")

    def test_missing_path_is_404(self):
        status, _ = get("/no-such-path")
        self.assertEqual(status, 404)


if __name__ == "__main__":
    unittest.main()
