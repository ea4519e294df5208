"""Smoke tests of the demo lab's API, run through the VIP like tempest's smoke suite.

rollci runs them with `python3 -m subunit.run discover` and reads the subunit v2 stream.
The VIP comes from ROLLCI_HOST_LB, the release the lab should run from
ROLLCI_EXPECTED_RELEASE. ROLLCI_SMOKE_BREAK names a test to fail on purpose (tests of rollci).
"""

import json
import os
import unittest
import urllib.error
import urllib.request

VIP = os.environ.get("ROLLCI_HOST_LB", "127.0.0.2:8080")
BREAK = os.environ.get("ROLLCI_SMOKE_BREAK", "")


def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://{VIP}{path}", data=data, method=method,
        headers={"Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=5) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as err:
        return err.code, None


class SmokeTest(unittest.TestCase):
    def setUp(self):
        if self.id().rsplit(".", 1)[-1] == BREAK:
            self.fail(f"broken on purpose by ROLLCI_SMOKE_BREAK={BREAK}")

    def test_healthz(self):
        status, body = call("GET", "/healthz")
        self.assertEqual(status, 200)
        self.assertEqual(body["status"], "ok")

    def test_version_is_expected_release(self):
        expected = os.environ.get("ROLLCI_EXPECTED_RELEASE")
        if expected is None:
            self.skipTest("ROLLCI_EXPECTED_RELEASE not set")
        status, body = call("GET", "/version")
        self.assertEqual(status, 200)
        self.assertEqual(body["release"], expected)

    def test_record_create_read_delete(self):
        status, created = call("POST", "/records", {"content": "smoke"})
        self.assertEqual(status, 201)
        status, read = call("GET", f"/records/{created['id']}")
        self.assertEqual(status, 200)
        self.assertEqual(read["content"], "smoke")
        status, _ = call("DELETE", f"/records/{created['id']}")
        self.assertEqual(status, 204)

    def test_missing_record_is_404(self):
        status, _ = call("GET", "/records/does-not-exist")
        self.assertEqual(status, 404)

    def test_list_records(self):
        status, body = call("GET", "/records")
        self.assertEqual(status, 200)
        self.assertIn("records", body)

    @unittest.skip("the demo API has no quotas (kept to show skips in reports)")
    def test_quotas(self):
        pass


if __name__ == "__main__":
    unittest.main()
