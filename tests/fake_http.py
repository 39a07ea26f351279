"""A real HTTP server on 127.0.0.1 for fake venues, with faults on demand.

Each fake venue (KuCoin, Binance, Coinbase, Robinhood, notification services) registers route
handlers that answer in the venue's exact wire format; tests then queue faults (429 with the
venue's headers, 500, slow answers, truncated or non-JSON bodies) for the next matching
requests. Every request is recorded so a test can assert what the client asked for.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Reply:
    """What a route answers."""

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Reply:
        return cls(status, json.dumps(data).encode(), dict(headers or {}))


@dataclass(frozen=True)
class Request:
    """One request as the server saw it."""

    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]
    body: bytes

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default


@dataclass
class Fault:
    """Replaces (or delays) the answer to the next ``times`` requests whose path starts with
    ``path_prefix``. ``delay`` seconds are slept before answering; ``reply`` None keeps the
    normal answer (a slow but correct venue); ``truncate`` cuts the normal body to that many
    bytes while keeping the Content-Length of the whole (a connection cut mid-body)."""

    path_prefix: str = "/"
    times: int = 1
    reply: Reply | None = None
    delay: float = 0.0
    truncate: int | None = None


Handler = Callable[[Request], Reply]


class FakeServer:
    """A threaded HTTP server on 127.0.0.1:<free port>; use as a context manager."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Handler] = {}
        self.prefix_routes: list[tuple[str, str, Handler]] = []
        self.faults: deque[Fault] = deque()
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def route(self, method: str, path: str, handler: Handler) -> None:
        self.routes[(method, path)] = handler

    def route_prefix(self, method: str, prefix: str, handler: Handler) -> None:
        """A handler for every path starting with ``prefix`` (path parameters)."""
        self.prefix_routes.append((method, prefix, handler))

    def fail(self, fault: Fault) -> None:
        with self._lock:
            self.faults.append(fault)

    def requests_to(self, path_prefix: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path.startswith(path_prefix)]

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ------------------------------------------------------------------ internals

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if path.startswith(fault.path_prefix):
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def _find(self, method: str, path: str) -> Handler | None:
        handler = self.routes.get((method, path))
        if handler:
            return handler
        for m, prefix, h in self.prefix_routes:
            if m == method and path.startswith(prefix):
                return h
        return None

    def _answer(self, request: Request) -> tuple[Reply, int | None]:
        with self._lock:
            self.requests.append(request)
        fault = self._take_fault(request.path)
        if fault and fault.delay:
            time.sleep(fault.delay)
        if fault and fault.reply is not None:
            return fault.reply, None
        handler = self._find(request.method, request.path)
        reply = handler(request) if handler else Reply.json({"error": "not found"}, 404)
        return reply, fault.truncate if fault else None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes; with Nagle's algorithm and delayed ACKs
            # every request would wait ~40 ms, making multi-year paging tests take seconds.
            disable_nagle_algorithm = True

            def _serve(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(
                    self.command,
                    url.path,
                    parse_qs(url.query, keep_blank_values=True),
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length) if length else b"",
                )
                reply, truncate = server._answer(request)
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(reply.body)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                body = reply.body if truncate is None else reply.body[:truncate]
                try:
                    self.wfile.write(body)
                    if truncate is not None:
                        self.wfile.flush()
                        self.close_connection = True
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test): nothing to do

            do_GET = do_POST = do_DELETE = _serve  # noqa: N815  (http.server's naming)

            def log_message(self, format: str, *args: Any) -> None:
                return  # keep test output clean

        return _Handler


class FakeVenue:
    """Base of the fake venues: owns a :class:`FakeServer` and is used as a context manager."""

    def __init__(self) -> None:
        self.server = FakeServer()

    def __enter__(self: _V) -> _V:
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(*exc)

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def fail(self, fault: Fault) -> None:
        self.server.fail(fault)


_V = TypeVar("_V", bound=FakeVenue)


def html_429_page() -> Reply:
    """What some venues really send when rate limiting: an HTML page, not JSON."""
    return Reply(
        429,
        b"<html><head><title>429 Too Many Requests</title></head>"
        b"<body><h1>Too Many Requests</h1></body></html>",
        {},
        "text/html",
    )
