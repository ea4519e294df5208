#!/usr/bin/env python3
"""A loopback fake Jenkins for rollci's tests: the REST endpoints `rollci jenkins push`
and `rollci jenkins lint` use, and no more.

Usage: fake_jenkins.py --user U --token T [--csrf] [--dump DIR] [--lint-error MSG]

Binds 127.0.0.1 on a free port and prints that port alone on its first stdout line.

What it does, like Jenkins 2.4xx with the Pipeline plugins:
  * Every request needs `Authorization: Basic` with U and T, else 401 with
    `WWW-Authenticate: Basic realm="Jenkins"` (a wrong token too, like Jenkins).
  * `--csrf`: `GET /crumbIssuer/api/json` answers `{"crumb", "crumbRequestField":
    "Jenkins-Crumb"}` and sets a `JSESSIONID.<id>` session cookie; every POST must then
    carry that crumb in `Jenkins-Crumb` *and* the cookie it was issued with, else 403
    "No valid crumb was included in the request". Without `--csrf` the crumb issuer is
    404, as on a Jenkins with CSRF protection off.
  * `GET /api/json`: the instance and its jobs (`useCrumbs` says whether `--csrf`).
  * `GET /job/<name>/api/json`: the job (`WorkflowJob`), 404 if absent.
  * `GET /job/<name>/config.xml`: the stored config, 404 if absent.
  * `POST /job/<name>/config.xml`: replaces it; 404 if absent.
  * `POST /createItem?name=<name>`: creates it; 400 with an `X-Error` header if it exists,
    if the name is missing or has a character Jenkins refuses (`?*/\\%!@#$^&|<>[]:;`).
  * Both POSTs of a config need an XML Content-Type and a body that parses as XML with a
    `flow-definition` root, else 400.
  * `POST /pipeline-model-converter/validate` with the form field `jenkinsfile`
    (urlencoded or multipart): answers 200 `Jenkinsfile successfully validated.` or
    200 `Errors encountered validating Jenkinsfile:` and the errors, like the real linter.
    `--lint-error MSG` makes it refuse every Jenkinsfile with MSG (to test a refusal).
  * `--dump DIR`: after every change, `DIR/jobs/<name>/config.xml` (written atomically)
    like JENKINS_HOME, and every request appended to `DIR/requests.jsonl` as
    `{"method", "path", "status", "crumb": bool}` (never the Authorization header).

Limits (it is not Jenkins):
  * the linter is crude: after removing comments and string literals it checks that
    braces, parentheses and brackets balance and that the script is an optional
    `@Library(...) _` then `pipeline { ... }` with nothing after; it does not know
    sections, steps, directives or their arguments, and never compiles Groovy. A file it
    accepts may still be refused by Jenkins (the `groovy` parse tests cover the syntax);
  * only top-level jobs: no folders (`/job/a/job/b`), views, builds or `/build`; job
    types are not checked beyond the `flow-definition` root, and the config is stored as
    sent (Jenkins re-serializes it with XStream and drops unknown elements);
  * with `--csrf` every POST needs the crumb, even with an API token (Jenkins exempts
    API-token requests since 2.96); crumbs never expire;
  * one user, no permissions model (no 403 for a user lacking Job/Create), no anonymous
    read access, no API-token management, no TLS;
  * no chunked request bodies (Content-Length is required, else 411); state is in
    memory only (plus the dump) and lost when the process ends.
"""

import argparse
import base64
import email.parser
import email.policy
import json
import os
import re
import secrets
import sys
import tempfile
import threading
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

CRUMB_FIELD = "Jenkins-Crumb"
LINT_OK = "Jenkinsfile successfully validated."
LINT_ERRORS = "Errors encountered validating Jenkinsfile:"
BAD_NAME_CHARS = set('?*/\\%!@#$^&|<>[]:;')
JOB_CLASS = "org.jenkinsci.plugins.workflow.job.WorkflowJob"


class State:
    """Jobs and issued crumbs, under one lock; mirrored into the dump directory."""

    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.jobs = {}
        self.crumbs = {}  # session id -> crumb

    def issue_crumb(self):
        with self.lock:
            session = secrets.token_hex(8)
            self.crumbs[session] = secrets.token_hex(16)
            return session, self.crumbs[session]

    def crumb_ok(self, session, crumb):
        with self.lock:
            return session is not None and crumb and self.crumbs.get(session) == crumb

    def store(self, name, xml):
        with self.lock:
            self.jobs[name] = xml
        if self.args.dump:
            path = os.path.join(self.args.dump, "jobs", name, "config.xml")
            write_atomically(path, xml)

    def record(self, entry):
        if self.args.dump:
            with self.lock, open(os.path.join(self.args.dump, "requests.jsonl"), "a") as f:
                f.write(json.dumps(entry) + "\n")


def write_atomically(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path))
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def strip_groovy(text):
    """The script without comments and string literals (each literal becomes `S`)."""
    token = re.compile(
        r"""//[^\n]*|/\*.*?\*/|'''.*?'''|\"\"\".*?\"\"\"|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"|.""",
        re.S,
    )
    out = []
    for m in token.finditer(text):
        t = m.group(0)
        if t.startswith(("//", "/*")):
            out.append(" ")
        else:
            out.append(" S " if len(t) > 1 else t)
    return "".join(out)


def lint(text):
    """The crude linter: a list of error strings, empty when the script looks valid."""
    if not text or not text.strip():
        return ["No Jenkinsfile given"]
    code = strip_groovy(text)
    if "'" in code or '"' in code:
        return ["unterminated string literal"]
    errors = balance(code)
    shape = re.fullmatch(r"\s*(@Library\s*\(\s*S\s*\)\s*_\s*)?pipeline\s*\{(.*)\}\s*", code, re.S)
    if not shape:
        errors.append("the script must be `pipeline { ... }`, optionally after `@Library(...) _`")
    return errors


def balance(code):
    pairs = {")": "(", "]": "[", "}": "{"}
    stack = []
    for line_no, line in enumerate(code.split("\n"), 1):
        for c in line:
            if c in "([{":
                stack.append((c, line_no))
            elif c in pairs:
                if not stack or stack[-1][0] != pairs[c]:
                    return [f"line {line_no}: unexpected `{c}`"]
                stack.pop()
    return [f"line {n}: `{c}` never closed" for c, n in stack]


class Handler(BaseHTTPRequestHandler):
    server_version = "Jetty(10.0.20)"
    state = None  # set in main

    def log_message(self, fmt, *args):
        sys.stderr.write("fake_jenkins: " + (fmt % args) + "\n")

    # --- plumbing -------------------------------------------------------------------

    def reply(self, status, body=b"", ctype="text/plain;charset=utf-8", headers=()):
        if isinstance(body, str):
            body = body.encode()
        elif not isinstance(body, bytes):
            body, ctype = json.dumps(body).encode(), "application/json;charset=utf-8"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Jenkins", "2.440.3")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        self.state.record({
            "method": self.command,
            "path": self.path,
            "status": status,
            "crumb": CRUMB_FIELD.lower() in (k.lower() for k in self.headers.keys()),
        })

    def authorized(self):
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, token = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return secrets.compare_digest(user, self.state.args.user) and secrets.compare_digest(
            token, self.state.args.token
        )

    def session(self):
        for part in self.headers.get("Cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name.startswith("JSESSIONID."):
                return value
        return None

    def body(self):
        length = self.headers.get("Content-Length")
        if length is None:
            return None
        return self.rfile.read(int(length))

    def route(self):
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.split("/") if p]
        return parts, parse_qs(url.query)

    # --- methods --------------------------------------------------------------------

    def do_GET(self):
        if not self.authorized():
            return self.unauthorized()
        parts, _ = self.route()
        if parts == ["api", "json"]:
            return self.reply(200, self.instance())
        if parts == ["crumbIssuer", "api", "json"]:
            return self.crumb()
        if len(parts) == 4 and parts[0] == "job" and parts[2:] == ["api", "json"]:
            return self.job_json(parts[1])
        if len(parts) == 3 and parts[0] == "job" and parts[2] == "config.xml":
            xml = self.state.jobs.get(parts[1])
            if xml is None:
                return self.reply(404, "Not Found")
            return self.reply(200, xml, "application/xml")
        return self.reply(404, "Not Found")

    def do_POST(self):
        if not self.authorized():
            return self.unauthorized()
        if self.state.args.csrf and not self.state.crumb_ok(
            self.session(), self.headers.get(CRUMB_FIELD)
        ):
            return self.reply(403, "No valid crumb was included in the request")
        body = self.body()
        if body is None:
            return self.reply(411, "Length Required")
        parts, query = self.route()
        if parts == ["createItem"]:
            return self.create(query.get("name", [None])[0], body)
        if len(parts) == 3 and parts[0] == "job" and parts[2] == "config.xml":
            return self.update(parts[1], body)
        if parts == ["pipeline-model-converter", "validate"]:
            return self.validate(body)
        return self.reply(404, "Not Found")

    def unauthorized(self):
        self.reply(401, "Unauthorized", headers=[("WWW-Authenticate", 'Basic realm="Jenkins"')])

    # --- endpoints ------------------------------------------------------------------

    def base(self):
        return f"http://{self.headers.get('Host', '127.0.0.1')}/"

    def instance(self):
        jobs = [
            {"_class": JOB_CLASS, "name": n, "url": f"{self.base()}job/{n}/", "color": "notbuilt"}
            for n in sorted(self.state.jobs)
        ]
        return {"_class": "hudson.model.Hudson", "mode": "NORMAL", "nodeName": "",
                "numExecutors": 0, "useCrumbs": self.state.args.csrf, "useSecurity": True,
                "jobs": jobs}

    def crumb(self):
        if not self.state.args.csrf:
            return self.reply(404, "Not Found")
        session, crumb = self.state.issue_crumb()
        cookie = f"JSESSIONID.{session[:8]}={session}; Path=/; HttpOnly"
        body = {"_class": "hudson.security.csrf.DefaultCrumbIssuer", "crumb": crumb,
                "crumbRequestField": CRUMB_FIELD}
        self.reply(200, body, headers=[("Set-Cookie", cookie)])

    def job_json(self, name):
        if name not in self.state.jobs:
            return self.reply(404, "Not Found")
        self.reply(200, {"_class": JOB_CLASS, "name": name, "fullName": name,
                         "url": f"{self.base()}job/{name}/", "buildable": True,
                         "builds": [], "nextBuildNumber": 1})

    def config_error(self, body):
        """Why a posted config is refused, or None."""
        if "xml" not in self.headers.get("Content-Type", ""):
            return "Content-Type must be application/xml"
        try:
            root = ET.fromstring(body)
        except ET.ParseError as e:
            return f"Failed to parse config.xml: {e}"
        if root.tag != "flow-definition":
            return f"Not a Pipeline job: root element <{root.tag}>"
        return None

    def create(self, name, body):
        if not name:
            return self.bad("Query parameter 'name' is required")
        bad = sorted(set(name) & BAD_NAME_CHARS)
        if bad or name in (".", ".."):
            return self.bad(f"‘{bad[0] if bad else name}’ is an unsafe character")
        if name in self.state.jobs:
            return self.bad(f"A job already exists with the name ‘{name}’")
        error = self.config_error(body)
        if error:
            return self.bad(error)
        self.state.store(name, body)
        self.reply(200, "")

    def update(self, name, body):
        if name not in self.state.jobs:
            return self.reply(404, "Not Found")
        error = self.config_error(body)
        if error:
            return self.bad(error)
        self.state.store(name, body)
        self.reply(200, "")

    def bad(self, message):
        self.reply(400, message, headers=[("X-Error", message.encode("ascii", "replace").decode())])

    def validate(self, body):
        text = self.form_field(body, "jenkinsfile")
        forced = self.state.args.lint_error
        errors = [forced] if forced else lint(text)
        if errors:
            return self.reply(200, LINT_ERRORS + "\n" + "\n".join(errors) + "\n")
        self.reply(200, LINT_OK + "\n")

    def form_field(self, body, field):
        ctype = self.headers.get("Content-Type", "")
        if ctype.startswith("multipart/form-data"):
            msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body
            )
            for part in msg.iter_parts():
                if part.get_param("name", header="content-disposition") == field:
                    return part.get_content()
            return None
        return parse_qs(body.decode("utf-8"), keep_blank_values=True).get(field, [None])[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--user", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--csrf", action="store_true")
    parser.add_argument("--dump")
    parser.add_argument("--lint-error")
    args = parser.parse_args()
    Handler.state = State(args)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
