"""Loopback fakes of the notification services, speaking their wire formats (spec §6).

- :class:`FakeDiscord`: ``POST /api/webhooks/{id}/{token}`` (optionally ``/api/v10``), 204 with
  an empty body, JSON errors ``{"message", "code"}``; 429 with ``Retry-After`` and the
  ``X-RateLimit-*`` headers and ``{"message", "retry_after", "global"}``.
- :class:`FakeTelegram`: ``/bot<token>/getMe`` and ``/bot<token>/sendMessage`` (JSON or form
  POST), answers ``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code",
  "description"[, "parameters": {"retry_after"}]}``; an unknown chat is 400 "chat not found".
- :class:`FakeReceiver`: any JSON POST, recorded (a custom or Slack-compatible webhook).
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qs

from tests.fake_http import FakeVenue, Reply, Request

TOKEN_RE = re.compile(r"^/bot(\d+:[A-Za-z0-9_-]{20,})/(\w+)$")
BOT = {"id": 987654321, "is_bot": True, "first_name": "PowerBot", "username": "power_bot"}


class FakeDiscord(FakeVenue):
    HOOK_ID, HOOK_TOKEN = "123456789012345678", "abcDEF-ghiJKL_mno"

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[dict[str, Any]] = []
        self.server.route_prefix("POST", "/api/", self._execute)

    @property
    def url(self) -> str:
        return f"{self.base_url}/api/webhooks/{self.HOOK_ID}/{self.HOOK_TOKEN}"

    def _execute(self, request: Request) -> Reply:
        path = request.path.removeprefix("/api/v10").removeprefix("/api")
        if path != f"/webhooks/{self.HOOK_ID}/{self.HOOK_TOKEN}":
            return Reply.json({"message": "Unknown Webhook", "code": 10015}, 404)
        body = json.loads(request.body or b"{}")
        if not body.get("content") and not body.get("embeds"):
            return Reply.json({"message": "Cannot send an empty message", "code": 50006}, 400)
        self.messages.append(body)
        if (request.param("wait") or "").lower() in ("true", "1"):  # requests sends "True"
            return Reply.json({"id": str(len(self.messages)), **body})
        return Reply(204, b"", content_type="text/plain")

    @staticmethod
    def rate_limited(retry_after: float) -> Reply:
        headers = {"Retry-After": str(int(retry_after + 0.999)), "X-RateLimit-Limit": "5",
                   "X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": str(retry_after),
                   "X-RateLimit-Scope": "shared"}  # fmt: skip
        body = {"message": "You are being rate limited.", "retry_after": retry_after,
                "global": False}  # fmt: skip
        return Reply.json(body, 429, headers)


class FakeTelegram(FakeVenue):
    TOKEN = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11"
    CHAT = "424242"

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[dict[str, Any]] = []
        self.server.route_prefix("POST", "/bot", self._call)
        self.server.route_prefix("GET", "/bot", self._call)

    def _params(self, request: Request) -> dict[str, Any]:
        kind = request.headers.get("content-type", "")
        if "json" in kind:
            return dict(json.loads(request.body or b"{}"))
        form = parse_qs(request.body.decode(), keep_blank_values=True)
        query = {k: v[0] for k, v in request.query.items()}
        return query | {k: v[0] for k, v in form.items()}

    def _call(self, request: Request) -> Reply:
        match = TOKEN_RE.match(request.path)
        if match is None or match.group(1) != self.TOKEN:
            return Reply.json({"ok": False, "error_code": 401, "description": "Unauthorized"}, 401)
        method, params = match.group(2).lower(), self._params(request)
        if method == "getme":
            return Reply.json({"ok": True, "result": BOT})
        if method != "sendmessage":
            return Reply.json({"ok": False, "error_code": 404, "description": "Not Found"}, 404)
        text = str(params.get("text", ""))
        if not 1 <= len(text) <= 4096:
            return self.error(400, "Bad Request: message text is empty")
        if str(params.get("chat_id")) != self.CHAT:
            return self.error(400, "Bad Request: chat not found")
        self.messages.append(params)
        result = {"message_id": len(self.messages), "from": BOT, "date": 1746268800,
                  "chat": {"id": int(self.CHAT), "type": "private"}, "text": text}  # fmt: skip
        return Reply.json({"ok": True, "result": result})

    @staticmethod
    def error(code: int, description: str, retry_after: int | None = None) -> Reply:
        body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
        if retry_after is not None:
            body["parameters"] = {"retry_after": retry_after}
        return Reply.json(body, code)


class FakeReceiver(FakeVenue):
    def __init__(self) -> None:
        super().__init__()
        self.received: list[dict[str, Any]] = []
        self.server.route("POST", "/hook", self._take)

    @property
    def url(self) -> str:
        return f"{self.base_url}/hook"

    def _take(self, request: Request) -> Reply:
        self.received.append(json.loads(request.body))
        return Reply.json({"ok": True})
