#!/usr/bin/env python3
"""A loopback fake Elasticsearch for rollci's tests: just enough of the `_bulk` API.

Usage: fake_es.py [--user U --password P | --api-key K] [--fail-items N] [--dump FILE]

Binds 127.0.0.1 on a free port and prints that port alone on its first stdout line.

What it does, like Elasticsearch 8:
  * `GET /` answers the cluster banner (name, version, tagline).
  * `POST|PUT /_bulk` and `POST|PUT /<index>/_bulk`: NDJSON, `index`/`create`/`update`/
    `delete` actions; every action line but `delete` is followed by a source line; the
    body must end with a newline; `_index` comes from the action or the path; `_id` is
    generated when absent. Answers `{"took", "errors", "items": [...]}` with per-item
    `status`, `result`, `_version`, or `error` (`version_conflict_engine_exception` for
    `create` of an existing id, `document_missing_exception` for `update`/`delete` of a
    missing one, `invalid_index_name_exception`).
  * Content-Type must be `application/x-ndjson` (charset allowed), else 406.
  * A malformed action line, a missing source line, a missing final newline, an empty
    body or an unknown action → 400 with an ES-style `{"error": {...}, "status": 400}`.
  * Auth: with `--user/--password` every request needs that `Authorization: Basic`, with
    `--api-key K` it needs `Authorization: ApiKey K`; else 401 `security_exception`.
  * `--fail-items N`: the first N items of every bulk request fail with
    `mapper_parsing_exception` (status 400) and are not stored; `errors` is then true.
  * `--dump FILE`: after every request, the stored documents are written (atomically) to
    FILE as `{"bulk_requests": n, "indices": {index: {id: source}}}`.

Limits (it is not Elasticsearch):
  * no search, get, count, mappings, templates, aliases, data streams or ingest pipelines;
  * a malformed *source* line is a 400 for the whole request (real ES fails only that
    item with `mapper_parsing_exception`); sources are not checked against any mapping;
  * `application/json` bodies are refused with 406 (real ES accepts them for `_bulk`);
  * `_version` is a plain counter: no `if_seq_no`/`if_primary_term`, no external
    versions, no routing, no `refresh` semantics (every write is visible at once and
    query parameters such as `?refresh=true` are ignored);
  * `update` supports `doc` (shallow merge) and `doc_as_upsert` only, no scripts;
  * no chunked request bodies (Content-Length is required, else 411), no compression,
    no TLS; bodies over 100 MB get 413 like the default `http.max_content_length`;
  * state is in memory only and lost when the process ends.
"""

import argparse
import base64
import json
import os
import re
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_CONTENT_LENGTH = 100 * 1024 * 1024
ACTIONS = ("index", "create", "update", "delete")
BAD_INDEX_CHARS = set('\\/*?"<>|, #:')


def es_error(kind, reason, status):
    """An ES-style whole-request error body."""
    cause = {"type": kind, "reason": reason}
    return status, {"error": {"root_cause": [cause], **cause}, "status": status}


def invalid_index(name):
    return (
        not name
        or name != name.lower()
        or any(c in BAD_INDEX_CHARS for c in name)
        or name[0] in "-_+"
        or name in (".", "..")
        or len(name.encode()) > 255
    )


class Store:
    """Documents by index and id, with a version counter; one lock for all."""

    def __init__(self, dump):
        self.lock = threading.Lock()
        self.indices = {}
        self.versions = {}
        self.requests = 0
        self.dump = dump

    def write_dump(self):
        if not self.dump:
            return
        folder = os.path.dirname(os.path.abspath(self.dump))
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".fake-es-")
        with os.fdopen(fd, "w") as f:
            json.dump({"bulk_requests": self.requests, "indices": self.indices}, f, indent=1)
        os.replace(tmp, self.dump)


def parse_bulk(body, path_index):
    """Splits an NDJSON body into (action, meta, source) triples or raises ValueError
    with an ES-style (status, body)."""
    if not body:
        raise ValueError(es_error("action_request_validation_exception",
                                  "Validation Failed: 1: no requests added;", 400))
    if not body.endswith(b"\n"):
        raise ValueError(es_error("illegal_argument_exception",
                                  "The bulk request must be terminated by a newline [\\n]", 400))
    lines = body.decode("utf-8").split("\n")[:-1]
    ops, i = [], 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        try:
            action_line = json.loads(lines[i])
        except json.JSONDecodeError as e:
            raise ValueError(es_error("x_content_parse_exception",
                                      f"[{i + 1}:{e.colno}] Malformed action/metadata line [{i + 1}]: {e.msg}", 400))
        if not isinstance(action_line, dict) or len(action_line) != 1:
            raise ValueError(es_error("illegal_argument_exception",
                                      f"Malformed action/metadata line [{i + 1}], expected a single action object", 400))
        (action, meta), = action_line.items()
        if action not in ACTIONS or not isinstance(meta, dict):
            raise ValueError(es_error("illegal_argument_exception",
                                      f"Malformed action/metadata line [{i + 1}], expected one of {list(ACTIONS)} but found [{action}]", 400))
        index = meta.get("_index", path_index)
        if index is None:
            raise ValueError(es_error("action_request_validation_exception",
                                      f"Validation Failed: 1: index is missing for line [{i + 1}];", 400))
        source = None
        if action != "delete":
            if i + 1 >= len(lines) or not lines[i + 1].strip():
                raise ValueError(es_error("illegal_argument_exception",
                                          f"The bulk request is missing the source line after action line [{i + 1}]", 400))
            try:
                source = json.loads(lines[i + 1])
            except json.JSONDecodeError as e:
                raise ValueError(es_error("x_content_parse_exception",
                                          f"[{i + 2}:{e.colno}] failed to parse source line [{i + 2}]: {e.msg}", 400))
            if not isinstance(source, dict):
                raise ValueError(es_error("x_content_parse_exception",
                                          f"source line [{i + 2}] is not a JSON object", 400))
            i += 1
        ops.append((action, index, meta.get("_id"), source))
        i += 1
    return ops


def apply(store, action, index, doc_id, source):
    """Applies one operation; returns its item result (without the action key)."""
    item = {"_index": index, "_id": doc_id}
    if invalid_index(index):
        return {**item, "status": 400, "error": {
            "type": "invalid_index_name_exception", "reason": f"Invalid index name [{index}]", "index": index}}
    docs = store.indices.setdefault(index, {})
    exists = doc_id in docs
    key = (index, doc_id)
    if action == "create" and exists:
        return {**item, "status": 409, "error": {
            "type": "version_conflict_engine_exception",
            "reason": f"[{doc_id}]: version conflict, document already exists"}}
    if action in ("update", "delete") and not exists and not (source or {}).get("doc_as_upsert"):
        if action == "delete":
            return {**item, "status": 404, "result": "not_found", "_version": 1}
        return {**item, "status": 404, "error": {
            "type": "document_missing_exception", "reason": f"[{doc_id}]: document missing"}}
    store.versions[key] = store.versions.get(key, 0) + 1
    version = {"_version": store.versions[key], "_shards": {"total": 1, "successful": 1, "failed": 0},
               "_seq_no": store.versions[key] - 1, "_primary_term": 1}
    if action == "delete":
        del docs[doc_id]
        return {**item, **version, "status": 200, "result": "deleted"}
    if action == "update":
        merged = dict(docs.get(doc_id, {}))
        merged.update(source.get("doc", {}))
        docs[doc_id] = merged
        return {**item, **version, "status": 200 if exists else 201, "result": "updated" if exists else "created"}
    docs[doc_id] = source
    return {**item, **version, "status": 200 if exists else 201, "result": "updated" if exists else "created"}


def bulk(store, ops, fail_items):
    items, started = [], time.monotonic()
    with store.lock:
        for n, (action, index, doc_id, source) in enumerate(ops):
            doc_id = doc_id if doc_id is not None else uuid.uuid4().hex[:20]
            if n < fail_items:
                result = {"_index": index, "_id": doc_id, "status": 400, "error": {
                    "type": "mapper_parsing_exception",
                    "reason": "failed to parse field [duration_ms] of type [long] in document with id "
                              f"'{doc_id}'. Preview of field's value: 'fake failure'"}}
            else:
                result = apply(store, action, index, doc_id, source)
            items.append({action: result})
    took = int((time.monotonic() - started) * 1000)
    return {"took": took, "errors": any("error" in next(iter(i.values())) for i in items), "items": items}


class Handler(BaseHTTPRequestHandler):
    server_version = "fake-es/8"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # keep test output quiet; errors go to stderr
        pass

    def answer(self, status, body, headers=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-elastic-product", "Elasticsearch")
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def authorized(self):
        cfg = self.server.cfg
        got = self.headers.get("Authorization", "")
        if cfg.api_key:
            return got == f"ApiKey {cfg.api_key}"
        if cfg.user is not None:
            want = base64.b64encode(f"{cfg.user}:{cfg.password}".encode()).decode()
            return got == f"Basic {want}"
        return True

    def refuse_auth(self):
        user = self.server.cfg.user or "_anonymous"
        status, body = es_error("security_exception",
                                f"unable to authenticate user [{user}] for REST request [{self.path}]", 401)
        self.answer(status, body, [("WWW-Authenticate", 'Basic realm="security", charset="UTF-8"'),
                                   ("WWW-Authenticate", "ApiKey")])

    def read_body(self):
        length = self.headers.get("Content-Length")
        if length is None:
            self.answer(*es_error("parse_exception", "Content-Length is required (no chunked bodies)", 411))
            return None
        if int(length) > MAX_CONTENT_LENGTH:
            self.answer(413, {"error": "Request Entity Too Large", "status": 413})
            self.close_connection = True
            return None
        return self.rfile.read(int(length))

    def do_GET(self):
        if not self.authorized():
            return self.refuse_auth()
        if self.path.split("?")[0] != "/":
            return self.answer(*es_error("illegal_argument_exception",
                                         f"no handler found for uri [{self.path}] and method [GET]", 400))
        self.answer(200, {"name": "fake-es", "cluster_name": "rollci-test", "cluster_uuid": "fake",
                          "version": {"number": "8.13.0", "build_flavor": "default",
                                      "lucene_version": "9.10.0", "minimum_wire_compatibility_version": "7.17.0"},
                          "tagline": "You Know, for Search"})

    def do_POST(self):
        path = self.path.split("?")[0]
        match = re.fullmatch(r"/(?:([^/_][^/]*)/)?_bulk", path)
        body = self.read_body()
        if body is None:
            return
        if not self.authorized():
            return self.refuse_auth()
        if not match:
            return self.answer(*es_error("illegal_argument_exception",
                                         f"no handler found for uri [{self.path}] and method [{self.command}]", 400))
        ctype = self.headers.get("Content-Type", "")
        if ctype.split(";")[0].strip().lower() != "application/x-ndjson":
            return self.answer(406, {"error": f"Content-Type header [{ctype}] is not supported", "status": 406})
        store = self.server.store
        try:
            status, answer = 200, bulk(store, parse_bulk(body, match.group(1)), self.server.cfg.fail_items)
        except ValueError as e:
            status, answer = e.args[0]
        # The dump is written before the answer, so a client that got its answer reads it.
        with store.lock:
            store.requests += 1
            store.write_dump()
        self.answer(status, answer)

    do_PUT = do_POST


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--api-key")
    parser.add_argument("--fail-items", type=int, default=0)
    parser.add_argument("--dump")
    cfg = parser.parse_args()
    if (cfg.user is None) != (cfg.password is None):
        parser.error("--user and --password go together")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.cfg = cfg
    server.store = Store(cfg.dump)
    with server.store.lock:
        server.store.write_dump()
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
