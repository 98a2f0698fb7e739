"""The simulator's ground floor: answers on the wire, Cloudflare's envelopes, the path prefixes and id patterns.

Every other simulator module may import this one; it imports none of them.
"""

from __future__ import annotations

import json
import re
from typing import Any, NamedTuple

__all__ = [
    "ACCOUNT_ID_RE",
    "API_PREFIX",
    "CONTROL_PREFIX",
    "JSON",
    "UUID_RE",
    "Response",
    "dumps",
    "error",
    "error_body",
    "ok",
]

#: Where the API is served, as Cloudflare's ``https://api.cloudflare.com/client/v4``.
API_PREFIX = "/client/v4"
#: Where the control endpoints are served (never logged, faulted or rate limited).
CONTROL_PREFIX = "/__simulator__"
JSON = "application/json"
#: An account id (also a token or user id): 32 lowercase hex digits.
ACCOUNT_ID_RE = re.compile(r"^[0-9a-f]{32}$")
#: A tunnel or connector id: a lowercase UUID.
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class Response(NamedTuple):
    """One HTTP answer."""

    status: int
    body: bytes
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = ()


def dumps(obj: Any) -> bytes:
    """Encode JSON compactly, as Cloudflare does.

    :param obj: a JSON-ready object.
    """
    return json.dumps(obj, separators=(",", ":")).encode()


def error_body(code: int, message: str, error_chain: list[dict[str, Any]] | None = None) -> bytes:
    """Return the bytes of a Cloudflare error envelope with one error.

    :param code: the Cloudflare error code.
    :param message: its message.
    :param error_chain: nested errors (``[{"code", "message"}]``), if any.
    """
    error: dict[str, Any] = {"code": code, "message": message}
    if error_chain:
        error["error_chain"] = error_chain
    return dumps({"success": False, "errors": [error], "messages": [], "result": None})


def error(status: int, code: int, message: str, error_chain: list[dict[str, Any]] | None = None) -> Response:
    """Return an error :class:`Response`.

    :param status: the HTTP status.
    :param code: the Cloudflare error code.
    :param message: its message.
    :param error_chain: nested errors, if any.
    """
    return Response(status, error_body(code, message, error_chain))


def ok(result: Any, result_info: dict[str, Any] | None = None, messages: list[Any] | None = None) -> Response:
    """Return a 200 success envelope.

    :param result: the ``result``.
    :param result_info: pagination info, for lists.
    :param messages: the ``messages`` list.
    """
    body: dict[str, Any] = {"success": True, "errors": [], "messages": messages or [], "result": result}
    if result_info is not None:
        body["result_info"] = result_info
    return Response(200, dumps(body))
