"""A fake Hugging Face Hub on 127.0.0.1: the few endpoints `create_repo`, `create_branch` and `upload_folder`
of huggingface_hub 2.x call (read from hf_api.py and _commit_api.py), so uploads are tested up to the HTTP
boundary with no network.

Routes:
  POST /api/repos/create                          -> {"url"}; 409 if it exists; 403 if someone else owns it
  GET  /api/models/{org}/{name}[/revision/{rev}]  -> repo info (create_repo asks for it after a 403)
  POST /api/models/{org}/{name}/branch/{branch}   -> {} ; 409 if the branch exists
  POST /api/validate-yaml                         -> {"errors": [], "warnings": []}
  POST /api/models/{org}/{name}/preupload/{rev}   -> every file "regular": contents come inline in the commit
  POST /api/models/{org}/{name}/commit/{rev}      -> NDJSON payload: header + base64 files; stores them

`fail[route] = [status, ...]` makes the next requests to that route answer those statuses (then succeed).
The server binds loopback only, serves in a daemon thread and shuts itself down after `lifetime_s`.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

REPO = r"(?P<repo>[^/]+/[^/]+)"
ROUTES = [
    ("POST", "create", re.compile(r"/api/repos/create")),
    ("POST", "validate", re.compile(r"/api/validate-yaml")),
    ("POST", "branch", re.compile(rf"/api/models/{REPO}/branch/(?P<rev>[^/]+)")),
    ("POST", "preupload", re.compile(rf"/api/models/{REPO}/preupload/(?P<rev>[^/]+)")),
    ("POST", "commit", re.compile(rf"/api/models/{REPO}/commit/(?P<rev>[^/]+)")),
    ("GET", "info", re.compile(rf"/api/models/{REPO}(?:/revision/(?P<rev>[^/]+))?")),
]


class FakeHub:
    """State of the fake Hub: repos (name -> owner), branches, committed files and the requests seen."""

    def __init__(self, user: str = "me", lifetime_s: float = 120.0):
        self.user = user
        self.repos: dict[str, str] = {}  # repo id -> owner
        self.branches: dict[str, set[str]] = {}
        self.files: dict[tuple[str, str], dict[str, bytes]] = {}  # (repo, revision) -> path -> bytes
        self.requests: list[dict] = []
        self.fail: dict[str, list[int]] = {}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._timer = threading.Timer(lifetime_s, self.stop)  # stops by itself even if a test forgets
        self._timer.daemon = True

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeHub:
        self._thread.start()
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._timer.cancel()
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    # ---- endpoint logic: (status, json body) ----
    def handle(self, route: str, match: re.Match, body: bytes, headers: dict) -> tuple[int, dict]:
        if self.fail.get(route):
            status = self.fail[route].pop(0)
            return status, {"error": f"fake hub: injected {status} on {route}"}
        if route != "validate" and not headers.get("authorization", "").startswith("Bearer "):
            return 401, {"error": "Invalid credentials in Authorization header"}
        if route == "validate":
            return 200, {"errors": [], "warnings": []}
        repo = match.groupdict().get("repo")
        rev = unquote(match.groupdict().get("rev") or "main")
        if route == "create":
            payload = json.loads(body)
            repo = f"{payload['organization']}/{payload['name']}"
            if repo in self.repos:
                owner = self.repos[repo]
                if owner != self.user:
                    return 403, {"error": "You don't have the rights to create a model under this namespace"}
                return 409, {"error": "You already created this model repo", "url": f"{self.url}/{repo}"}
            if payload["organization"] != self.user:
                return 403, {"error": "You don't have the rights to create a model under this namespace"}
            self.repos[repo] = self.user
            self.branches[repo] = {"main"}
            return 200, {"url": f"{self.url}/{repo}"}
        if repo not in self.repos:
            return 404, {"error": "Repository not found"}
        if route == "info":
            return 200, {"id": repo, "modelId": repo, "sha": "0" * 40, "private": False, "siblings": []}
        if self.repos[repo] != self.user:
            return 403, {"error": "You don't have the rights to write to this repository"}
        if route == "branch":
            if rev in self.branches[repo]:
                return 409, {"error": "Branch already exists"}
            self.branches[repo].add(rev)
            return 200, {}
        if rev not in self.branches[repo]:
            return 404, {"error": f"Revision {rev} not found"}
        if route == "preupload":
            files = json.loads(body)["files"]
            return 200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]}
        return self._commit(repo, rev, body)

    def _commit(self, repo: str, rev: str, body: bytes) -> tuple[int, dict]:
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0]["key"] != "header":
            return 400, {"error": "commit payload must start with a header"}
        files = self.files.setdefault((repo, rev), {})
        for item in lines[1:]:
            if item["key"] != "file" or item["value"].get("encoding") != "base64":
                return 400, {"error": f"fake hub only takes inline base64 files, got {item['key']}"}
            files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
        return 200, {"commitUrl": f"{self.url}/{repo}/commit/{'1' * 40}", "commitOid": "1" * 40}

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self, method: str) -> None:
                path = urlsplit(self.path).path
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                hub.requests.append({"method": method, "path": path, "headers": headers})
                for verb, route, pattern in ROUTES:
                    match = pattern.fullmatch(path)
                    if verb == method and match:
                        status, payload = hub.handle(route, match, body, headers)
                        break
                else:
                    status, payload = 404, {"error": f"fake hub has no route {method} {path}"}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def log_message(self, *args) -> None:  # keep test output clean
                pass

        return Handler
