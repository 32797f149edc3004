"""Small stateful HTTP fakes of outside APIs, served on 127.0.0.1 from a background thread.

Each fake is a `FakeServer`: a `ThreadingHTTPServer` on a free loopback port, a routing table,
a request log and a queue of injectable faults. Handlers run in server threads, so the fakes
serve blocking clients (hcloud/requests in `asyncio.to_thread`) and async ones (httpx) alike.

    with FakeHetzner() as fake:          # or fake.start() ... fake.stop() in a fixture
        client = Client("test-token", api_endpoint=fake.url)
        fake.fail(503, times=2)          # the next two requests answer 503
        fake.requests                    # [(method, path), ...] seen so far
"""
from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["Fault", "FakeServer", "Request", "Response", "iso_now"]


def iso_now(precise: bool = False) -> str:
    """The current UTC time in ISO 8601: `2024-03-01T10:00:00+00:00` (Hetzner) or, precise,
    `2024-03-01T10:00:00.123456Z` (Cloudflare, deSEC)."""
    now = datetime.now(timezone.utc)
    if precise:
        return now.isoformat(timespec="microseconds").replace("+00:00", "Z")
    return now.isoformat(timespec="seconds")


@dataclass
class Request:
    """One HTTP request as a handler sees it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    url: str = ""
    params: dict[str, str] = field(default_factory=dict)

    def arg(self, name: str, default: str | None = None) -> str | None:
        """The first value of query parameter `name`."""
        values = self.query.get(name)
        return values[0] if values else default

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Response:
    """What a handler answers: a status, a JSON-able body (or None) and headers."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Fault:
    """An injected answer for the next `times` matching requests.

    With `status` None the request is only delayed by `delay` seconds and then served normally.
    """

    status: int | None
    body: Any = None
    headers: dict[str, str] | Callable[[], dict[str, str]] = field(default_factory=dict)
    times: int = 1
    method: str | None = None
    path: str | None = None  # regular expression, searched in the request path
    delay: float = 0.0

    def matches(self, request: Request) -> bool:
        if self.method and self.method != request.method:
            return False
        return not self.path or re.search(self.path, request.path) is not None

    def response(self) -> Response:
        headers = self.headers() if callable(self.headers) else dict(self.headers)
        return Response(self.status or 500, self.body, headers)


Handler = Callable[[Request], Response]


class FakeServer:
    """Base of the fakes: routes, faults, request log, start/stop on a free loopback port."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str]] = []
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> str:
        """Start serving in a daemon thread; returns the base URL (http://127.0.0.1:PORT)."""
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,),
                                        daemon=True, name=type(self).__name__)
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "fake not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # -- configuration ---------------------------------------------------------------------

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        """Serve `method` on paths fully matching `pattern` (named groups become params)."""
        self._routes.append((method, re.compile(pattern), handler))

    def add_fault(self, fault: Fault) -> None:
        with self.lock:
            self.faults.append(fault)

    def slow(self, seconds: float, times: int = 1, method: str | None = None,
             path: str | None = None) -> None:
        """Delay the next `times` matching requests by `seconds`."""
        self.add_fault(Fault(None, times=times, method=method, path=path, delay=seconds))

    def count(self, method: str, path_pattern: str) -> int:
        """How many requests with `method` and a path matching `path_pattern` were served."""
        with self.lock:
            return sum(1 for m, p in self.requests
                       if m == method and re.fullmatch(path_pattern, p))

    # -- hooks for subclasses --------------------------------------------------------------

    def authorize(self, request: Request) -> Response | None:
        """Return an error response when the request is not authenticated."""
        return None

    def not_found(self, request: Request) -> Response:
        return Response(404, {"error": "not found", "path": request.path})

    def decorate(self, response: Response) -> Response:
        """Add headers every response carries (rate limit headers and the like)."""
        return response

    # -- dispatch --------------------------------------------------------------------------

    def dispatch(self, request: Request) -> Response:
        with self.lock:
            self.requests.append((request.method, request.path))
            fault = self._take_fault(request)
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        if fault is not None and fault.status is not None:
            return self.decorate(fault.response())
        with self.lock:
            return self.decorate(self._serve(request))

    def _take_fault(self, request: Request) -> Fault | None:
        for fault in self.faults:
            if fault.times > 0 and fault.matches(request):
                fault.times -= 1
                return fault
        return None

    def _serve(self, request: Request) -> Response:
        denied = self.authorize(request)
        if denied is not None:
            return denied
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(request.path)
            if match and method == request.method:
                request.params = match.groupdict()
                return handler(request)
        return self.not_found(request)


def _handler_class(fake: FakeServer) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def _handle(self) -> None:
            split = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            request = Request(
                method=self.command,
                path=split.path,
                query=parse_qs(split.query, keep_blank_values=True),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=self.rfile.read(length) if length else b"",
                url=f"{fake.base_url}{self.path}",
            )
            response = fake.dispatch(request)
            payload = b"" if response.body is None else json.dumps(response.body).encode()
            try:
                self.send_response(response.status)
                for name, value in response.headers.items():
                    self.send_header(name, value)
                if payload:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test); nothing to answer

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    return _Handler
