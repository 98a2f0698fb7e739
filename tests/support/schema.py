"""Cloudflare's published Tunnel schema, patched for its known defects, and a check of one simulator answer.

The schema is Cloudflare's published OpenAPI document (Tunnel subset, 2024; see
``tests/contract/README.md``). :func:`check` validates one answer:

* a 200 from an operation in the schema is validated with openapi-core (``validate_response``);
* any other answer must be a JSON error envelope with a non-empty ``errors`` list of integer codes, and is
  validated against the schema's failure envelope (with its ``minLength`` defect corrected, see below).

The schema's known defects are patched here, in a copy of the spec, never in the simulator:

1. ``deleted_at``, ``conns_active_at`` and ``conns_inactive_at`` are not nullable, but the real API sends
   ``null`` for them: the copy marks them ``nullable`` (``test_the_timestamp_defect_is_real`` shows the
   unpatched schema rejects a real answer).
2. ``GET /accounts/{account_id}/tokens/verify`` is missing: the copy adds it with the same response schema as
   ``GET /user/tokens/verify`` (which is what today's API and SDKs document).
3. The ``4XX`` responses are an ``allOf`` of the success and failure envelopes, which no error body can
   satisfy: error bodies are validated against the failure envelope alone, whose ``errors`` carries
   ``minLength: 1`` (meaningless on an array): the copy uses ``minItems: 1``, which is what it means.
4. Error and message codes carry ``minimum: 1000``, but the real API answers a rate-limited call with code
   971: the copy drops the minimum (codes stay integers).
5. ``servers`` names api.cloudflare.com: the copy serves the same paths under ``http://127.0.0.1:{port}``.

``GET /user`` is not in the schema: its envelope is checked by hand. Used by ``tests/contract`` and the
simulator's fleet tests.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
from openapi_schema_validator import OAS30Validator

if TYPE_CHECKING:
    import requests

__all__ = ["FAILURE", "OPENAPI", "SPEC", "SPEC_FILE", "Validated", "check", "operation_of", "published_spec"]

SPEC_FILE = Path(__file__).resolve().parents[1] / "contract" / "cloudflare-tunnel.openapi.json"
NULLABLE_TIMESTAMPS = ("tunnel_deleted_at", "tunnel_conns_active_at", "tunnel_conns_inactive_at")
ACCOUNT_VERIFY = "/accounts/{account_id}/tokens/verify"


def published_spec() -> dict[str, Any]:
    """Return the schema as Cloudflare published it."""
    return json.loads(SPEC_FILE.read_text())


def patched_spec() -> dict[str, Any]:
    """The published spec with its known defects corrected (see the module docstring)."""
    spec = published_spec()
    spec["servers"] = [{"url": "http://127.0.0.1:{port}/client/v4", "variables": {"port": {"default": "80"}}}]
    schemas = spec["components"]["schemas"]
    for name in NULLABLE_TIMESTAMPS:  # defect 1
        schemas[name]["nullable"] = True
    user_verify = spec["paths"]["/user/tokens/verify"]["get"]
    spec["paths"][ACCOUNT_VERIFY] = {  # defect 2
        "get": {
            "operationId": "account-api-tokens-verify-token",
            "parameters": [
                {
                    "in": "path",
                    "name": "account_id",
                    "required": True,
                    "schema": {"$ref": "#/components/schemas/tunnel_account_id"},
                }
            ],
            "responses": {"200": copy.deepcopy(user_verify["responses"]["200"])},
            "security": [{"api_token": []}],
        }
    }
    for failure in ("tunnel_api-response-common-failure", "iam_api-response-common-failure"):  # defect 3
        errors = schemas[failure]["properties"]["errors"]
        errors.pop("minLength")
        errors["minItems"] = 1
    for messages in ("tunnel_messages", "iam_messages"):  # defect 4
        schemas[messages]["items"]["properties"]["code"].pop("minimum")
    return spec


SPEC = patched_spec()
OPENAPI = OpenAPI.from_dict(SPEC)
FAILURE = OAS30Validator(
    {"$ref": "#/components/schemas/tunnel_api-response-common-failure", "components": SPEC["components"]}
)


class Validated:
    """What the response hook has validated, for coverage assertions."""

    def __init__(self) -> None:
        self.operations: set[str] = set()
        self.errors: list[int] = []
        self.tunnel_statuses: set[str] = set()


TEMPLATES = {
    3: "/accounts/{account_id}/cfd_tunnel",
    4: "/accounts/{account_id}/cfd_tunnel/{tunnel_id}",
    5: "/accounts/{account_id}/cfd_tunnel/{tunnel_id}/connections",
    6: "/accounts/{account_id}/cfd_tunnel/{tunnel_id}/connectors/{connector_id}",
}


def operation_of(response: requests.Response) -> str:
    """``METHOD /path/template`` of the schema operation a request hit."""
    path = response.request.path_url.split("?")[0].removeprefix("/client/v4")
    parts = path.strip("/").split("/")
    if parts[0] == "user":
        template = path
    elif parts[2] == "tokens":
        template = ACCOUNT_VERIFY
    else:
        template = TEMPLATES[len(parts)]
    return f"{response.request.method} {template}"


def check(response: requests.Response, seen: Validated) -> None:
    """Validate one answer (see the module docstring)."""
    body = response.json()
    if response.status_code == 200 and body["success"] is True:  # a 200 with success: false is an error body
        if response.request.path_url.split("?")[0] == "/client/v4/user":
            assert body["success"] is True
            assert body["errors"] == []
            assert isinstance(body["result"]["id"], str)
            seen.operations.add("GET /user")
            return
        OPENAPI.validate_response(RequestsOpenAPIRequest(response.request), RequestsOpenAPIResponse(response))
        seen.operations.add(operation_of(response))
        result = body["result"]
        for tunnel in result if isinstance(result, list) else [result]:
            if isinstance(tunnel, dict) and "tun_type" in tunnel:
                seen.tunnel_statuses.add(tunnel["status"])
        return
    assert response.headers["Content-Type"] == "application/json"
    FAILURE.validate(body)
    assert body["errors"], "an error body names at least one error"
    for error in body["errors"]:
        assert isinstance(error["code"], int)
        assert not isinstance(error["code"], bool)
        assert error["message"]
    seen.errors.append(body["errors"][0]["code"])
