"""The OpenAPI 3.1 description of the HTTP API, served at /v1/openapi.json.

Written out rather than generated from the handlers: it is the contract the web frontend and
scripts rely on, and the test suite checks the running API against it with schemathesis.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shared.campaigns.drafts import EDITABLE
from shared.contacts import DELIMITERS, ENCODINGS


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(kind: str, **extra: Any) -> dict[str, Any]:
    return {"type": [kind, "null"], **extra}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERROR = _json(_ref("Error"), "A problem a person can act on")
_ERRORS = {"4XX": _ERROR, "503": _json(_ref("Error"), "A dependency is unavailable; nothing was saved")}
_PUBLIC: list[dict[str, Any]] = []

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "field": _nullable("string"), "message": {"type": "string"}},
        }},
    },
    "User": {"type": "object", "required": ["id", "email"], "properties": {
        "id": {"type": "integer"}, "email": {"type": "string"}, "created_at": {"type": "string"}}},
    "Session": {"type": "object", "required": ["user", "csrf_token"], "properties": {
        "user": _ref("User"), "csrf_token": {"type": "string"}}},
    "Credentials": {"type": "object", "required": ["email", "password"], "properties": {
        "email": {"type": "string"}, "password": {"type": "string"}}},
    "ApiKey": {"type": "object", "required": ["id", "prefix", "name"], "properties": {
        "id": {"type": "integer"}, "prefix": {"type": "string"}, "name": {"type": "string"},
        "created_at": {"type": "string"}, "last_used_at": _nullable("string"),
        "key": {"type": "string", "description": "Only in the answer that creates it"}}},
    "Preset": {"type": "object", "properties": {
        "key": {"type": "string"}, "title": {"type": "string"}, "host": {"type": "string"},
        "port": {"type": "integer"}, "security": {"type": "string"}, "per_minute": _nullable("integer"),
        "per_day": _nullable("integer"),
        "app_password_hint": {"type": "boolean"}}},
    "SenderInput": {"type": "object", "properties": {
        "from_email": {"type": "string"}, "from_name": {"type": "string"}, "preset": _nullable("string"),
        "host": {"type": "string"}, "port": {"type": "integer"},
        "security": {"type": "string", "enum": ["tls", "starttls", "starttls_optional", "none"]},
        "username": {"type": "string"}, "password": {"type": "string", "writeOnly": True},
        "per_minute": _nullable("integer"), "per_day": _nullable("integer"),
        "recipients_per_connection": _nullable("integer")}},
    "Sender": {"type": "object", "required": ["id", "from_email", "host", "port", "security", "verified"],
               "properties": {
        "id": {"type": "integer"}, "from_email": {"type": "string"}, "from_name": {"type": "string"},
        "host": {"type": "string"}, "port": {"type": "integer"}, "security": {"type": "string"},
        "username": {"type": "string"}, "preset": _nullable("string"), "per_minute": _nullable("integer"),
        "per_day": _nullable("integer"), "recipients_per_connection": _nullable("integer"),
        "verified": {"type": "boolean"}, "verified_at": _nullable("string"), "paused_until": _nullable("string"),
        "pause_reason": _nullable("string"), "last_error": _nullable("string"), "created_at": _nullable("string"),
        "held_by": {"type": "array", "description": "Unfinished campaigns through it (the first 5): it cannot be"
                    " deleted while there are any.", "items": {"type": "object"}}}},
    "Verification": {"type": "object", "required": ["verified"], "properties": {
        "verified": {"type": "boolean"}, "sender": _ref("Sender"),
        "error": {"type": "object", "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                                                    "smtp_code": _nullable("integer")}}}},
    "Suppression": {"type": "object", "properties": {
        "email": {"type": "string"},
        "reason": {"type": "string", "enum": ["unsubscribed", "hard_bounce", "soft_bounce", "complaint", "manual",
                                              "imported"]},
        "created_at": {"type": "string"}, "campaign_id": _nullable("string"), "sender_email": _nullable("string"),
        "detail": _nullable("string")}},
    "Upload": {"type": "object", "required": ["id", "status"], "properties": {
        "id": {"type": "string", "format": "uuid"}, "filename": {"type": "string"},
        "size_bytes": _nullable("integer"),
        "status": {"type": "string", "enum": ["awaiting_upload", "inspecting", "ready", "failed"]},
        "error": {"type": ["object", "null"]}, "dialect": {"type": ["object", "null"]},
        "columns": {"type": ["array", "null"]}, "preview": {"type": ["array", "null"]},
        "report": {"type": ["object", "null"]}, "rows_read": {"type": "integer"},
        "waiting_reason": _nullable("string"),  # while `inspecting` and no file reader has taken it yet
        "created_at": {"type": "string"}, "updated_at": {"type": "string"}}},
    "UploadCorrection": {"type": "object", "properties": {
        "encoding": {"type": "string", "enum": list(ENCODINGS)},
        "delimiter": {"type": "string", "enum": list(DELIMITERS)},
        "has_header": {"type": "boolean"}, "email_column": {"type": "integer", "minimum": 0},
        "accept_fewer": {"type": "boolean", "description": "apply a correction that finds far fewer addresses"}}},
    "CampaignInput": {"type": "object", "properties": {
        "name": {"type": "string"}, "sender_id": _nullable("integer"), "upload_id": _nullable("string"),
        "subject": {"type": "string", "description": "Merge fields as {{ field }}"},
        "html_body": {"type": "string"}, "text_body": _nullable("string")},
        "description": f"Any of: {', '.join(EDITABLE)}"},
    "Campaign": {"type": "object", "required": ["id", "status"], "properties": {
        "id": {"type": "string", "format": "uuid"}, "name": {"type": "string"},
        "status": {"type": "string",
                   "enum": ["draft", "scheduled", "queued", "sending", "paused", "cancelled", "finished"]},
        "scheduled_at": _nullable("string", format="date-time"),
        "status_reason": _nullable("string"), "sender_id": _nullable("integer"), "upload_id": _nullable("string"),
        "subject": {"type": "string"}, "html_body": {"type": "string"}, "text_body": _nullable("string"),
        "recipient_count": {"type": "integer"}, "duplicates_removed": {"type": "integer"},
        "counts": {"type": "object"}, "rate_per_minute": {"type": "integer"}, "eta_seconds": _nullable("integer"),
        "plan": {"type": ["object", "null"], "description": "How the account's limits spread the emails still to"
                 " send: count, per_day (null: no daily limit), days (the day the last goes out), first_at and"
                 " last_at (epoch seconds). Null when nothing limits the pace and none was seen yet.",
                 "properties": {"count": {"type": "integer"}, "per_day": _nullable("integer"),
                                "days": {"type": "integer"}, "first_at": {"type": "integer"},
                                "last_at": {"type": "integer"}}},
        "plan_now": {"type": ["object", "null"], "description": "A scheduled campaign's plan were it sent now"
                     " (as `plan`); null for any other."},
        "next_batch": {"type": ["object", "null"], "description": "While a sending campaign's next emails wait"
                       " more than a few seconds: when (`at`, epoch seconds) and why (`reason`: minute_limit or"
                       " day_limit with the sender's `limit`, rate_limit, sender_paused, slow_server, continuing,"
                       " retry, or error with the server's words in `detail`). `in_status_reason`: status_reason"
                       " says only this wait (in UTC).",
                       "properties": {"at": {"type": "integer"}, "reason": {"type": "string"},
                                      "limit": _nullable("integer"), "detail": _nullable("string"),
                                      "in_status_reason": {"type": "boolean"}}},
        "planned": {"type": ["object", "null"], "description": "A draft or scheduled campaign: what its contact"
                    " file gives (recipients, and suppressed, duplicates and problems left out).",
                    "properties": {k: {"type": "integer"} for k in ("recipients", "suppressed", "duplicates",
                                                                    "problems")}},
        "waiting_for": {"type": ["object", "null"], "description": "A campaign (a draft too) that sent nothing in the"
                        " last minute while an earlier one of the same sender still has mail to go: that one"
                        " (id, name, subject) and how many `others` are ahead too; plan.first_at says when"
                        " this one's first email is due.",
                        "properties": {"id": {"type": "string"}, "name": {"type": "string"},
                                       "subject": {"type": "string"}, "others": {"type": "integer"}}}}},
    "Recipient": {"type": "object", "properties": {
        "position": {"type": "integer"}, "email": {"type": "string"}, "status": {"type": "string"},
        "reply": _nullable("string"), "attempts": {"type": "integer"}, "updated_at": {"type": "string"}}},
    "Preview": {"type": "object", "properties": {
        "row": {"type": "integer"}, "email": {"type": "string"}, "fields": {"type": "object"},
        "subject": {"type": "string"}, "html": {"type": "string"}, "text": {"type": "string"},
        "undefined": {"type": "array", "items": {"type": "string"}}}},
    "SeedRequest": {"type": "object", "required": ["message", "message_subject", "recipient_email_list",
                                                  "sender_email", "smtp_password"], "properties": {
        "message": {"type": "string", "description": "HTML body"}, "message_subject": {"type": "string"},
        "recipient_email_list": {"type": "array", "items": {"type": "string"}},
        "sender_email": {"type": "string"}, "smtp_password": {"type": "string"},
        "server_host": {"type": "string", "description": "Empty: detected from the sender's domain"},
        "server_port": {"type": ["integer", "string"]}}},
    "SeedAccepted": {"type": "object", "required": ["campaign_id", "accepted"], "properties": {
        "campaign_id": {"type": "string"}, "status": {"type": "string"}, "accepted": {"type": "integer"},
        "duplicates_removed": {"type": "integer"}, "status_url": {"type": "string"}}},
    "SeedStatus": {"type": "object", "required": ["id", "status", "counts"], "properties": {
        "id": {"type": "string"}, "status": {"type": "string"}, "counts": {"type": "object"}}},
}


def _op(summary: str, responses: dict[str, Any], *, body: str | None = None, public: bool = False,
        parameters: list[dict[str, Any]] | None = None, tags: list[str] | None = None) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "responses": {**responses, **_ERRORS}}
    if body:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
    if public:
        operation["security"] = _PUBLIC
    if parameters:
        operation["parameters"] = parameters
    if tags:
        operation["tags"] = tags
    return operation


def _path(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


_NO_CONTENT = {"204": {"description": "Done"}}
_CAMPAIGN = [_path("campaign_id", {"type": "string", "format": "uuid"})]
_SENDER = [_path("sender_id", {"type": "integer"})]
_UPLOAD = [_path("upload_id", {"type": "string", "format": "uuid"})]
_CSV = {"description": "CSV", "content": {"text/csv": {"schema": {"type": "string"}}}}
_IDEMPOTENCY = {"name": "Idempotency-Key", "in": "header", "required": False,
                "schema": {"type": "string", "minLength": 1, "maxLength": 200}}
_HTML = {"description": "A page", "content": {"text/html": {"schema": {"type": "string"}}}}


def _items(schema: str) -> dict[str, Any]:
    return {"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "items": _ref(schema)}}}


PATHS: dict[str, Any] = {
    "/api/health": {"get": _op("Liveness", {"200": _json({"type": "object"})}, public=True)},
    "/api/send-message": {"post": _op(
        "Send one message to a list of addresses (the seed project's API)",
        {"202": _json(_ref("SeedAccepted"), "Accepted and queued")}, body="SeedRequest", tags=["seed"])},
    "/api/campaigns/{campaign_id}": {"get": _op(
        "Status of a campaign sent with /api/send-message", {"200": _json(_ref("SeedStatus"))},
        parameters=_CAMPAIGN, tags=["seed"])},
    "/v1/auth/register": {"post": _op("Create an account and log in", {"201": _json(_ref("Session"))},
                                      body="Credentials", public=True, tags=["accounts"])},
    "/v1/auth/login": {"post": _op("Log in (sets the session and CSRF cookies)", {"200": _json(_ref("Session"))},
                                   body="Credentials", public=True, tags=["accounts"])},
    "/v1/auth/logout": {"post": _op("Log out", _NO_CONTENT, tags=["accounts"])},
    "/v1/auth/password": {"post": {**_op("Change password (ends other sessions)", _NO_CONTENT, tags=["accounts"]),
                                   "requestBody": {"required": True, "content": {"application/json": {"schema": {
                                       "type": "object", "properties": {"current_password": {"type": "string"},
                                                                        "new_password": {"type": "string"}}}}}}}},
    "/v1/me": {"get": _op("The current user", {"200": _json(_ref("User"))}, tags=["accounts"])},
    "/v1/api-keys": {
        "get": _op("API keys (prefix only)", {"200": _json(_items("ApiKey"))}, tags=["accounts"]),
        "post": {**_op("Create an API key (shown once)", {"201": _json(_ref("ApiKey"))}, tags=["accounts"]),
                 "requestBody": {"required": True, "content": {"application/json": {"schema": {
                     "type": "object", "properties": {"name": {"type": "string"}}}}}}},
    },
    "/v1/api-keys/{key_id}": {"delete": _op("Revoke an API key", _NO_CONTENT,
                                            parameters=[_path("key_id", {"type": "integer"})], tags=["accounts"])},
    "/v1/presets": {"get": _op("Mail provider presets", {"200": _json(_items("Preset"))}, tags=["senders"])},
    "/v1/senders": {
        "get": _op("SMTP accounts", {"200": _json(_items("Sender"))}, tags=["senders"]),
        "post": _op("Add an SMTP account", {"201": _json(_ref("Sender"))}, body="SenderInput", tags=["senders"]),
    },
    "/v1/senders/{sender_id}": {
        "get": _op("One SMTP account", {"200": _json(_ref("Sender"))}, parameters=_SENDER, tags=["senders"]),
        "patch": _op("Change an SMTP account (password optional)", {"200": _json(_ref("Sender"))},
                     body="SenderInput", parameters=_SENDER, tags=["senders"]),
        "delete": _op("Delete an SMTP account", _NO_CONTENT, parameters=_SENDER, tags=["senders"]),
    },
    "/v1/senders/{sender_id}/verify": {"post": _op(
        "Verify live: connect, TLS, log in, check the sender address",
        {"200": _json(_ref("Verification")), "422": _json(_ref("Verification"), "What failed, in plain words")},
        parameters=_SENDER, tags=["senders"])},
    "/v1/senders/{sender_id}/imap": {
        "get": _op("Bounce reading: IMAP settings, last check, problem, 30-day bounce rate",
                   {"200": _json({"type": "object"})}, parameters=_SENDER, tags=["bounces"]),
        "put": {**_op("Set the IMAP account bounces are read from, and check it live",
                      {"200": _json({"type": "object"}),
                       "422": _json({"type": "object"}, "What failed, in plain words")},
                      parameters=_SENDER, tags=["bounces"]),
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "properties": {
                        "imap_host": _nullable("string"), "imap_port": {"type": "integer"},
                        "imap_username": _nullable("string"), "imap_password": _nullable("string"),
                        "imap_move_bounces": {"type": "boolean"}, "imap_enabled": {"type": "boolean"}}}}}}},
    },
    "/v1/senders/{sender_id}/imap/verify": {"post": _op(
        "Check the IMAP account live: connect, TLS, log in, open INBOX",
        {"200": _json({"type": "object"}), "422": _json({"type": "object"}, "What failed, in plain words")},
        parameters=_SENDER, tags=["bounces"])},
    "/v1/suppressions": {
        "get": _op("The account's suppression list (search with q)", {"200": _json(_items("Suppression"))},
                   parameters=[_query("q", {"type": "string"}), _query("after", {"type": "string"})],
                   tags=["suppressions"]),
        "post": {**_op("Suppress addresses", {"201": _json({"type": "object"})}, tags=["suppressions"]),
                 "requestBody": {"required": True, "content": {"application/json": {"schema": {
                     "type": "object", "properties": {"emails": {"type": "array", "items": {"type": "string"}},
                                                      "partial": {"type": "boolean"}}}}}}},
        "delete": _op("Remove an address from the suppression list (any address, one with a '/' too)", _NO_CONTENT,
                      parameters=[{**_query("email", {"type": "string"}), "required": True}], tags=["suppressions"]),
    },
    "/v1/suppressions/import": {"post": {
        **_op("Import a CSV or a list of addresses (one a line); one import per account at a time",
              {"201": _json({"type": "object"}),
               "409": _json(_ref("Error"), "Another import of this account is still running")},
              tags=["suppressions"]),
        "requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}}},
    "/v1/suppressions/export": {"get": _op(
        "The suppression list as CSV, in `lang` (else the browser's language)", {"200": {
            "description": "CSV", "content": {"text/csv": {"schema": {"type": "string"}}}}},
        parameters=[_query("lang", {"type": "string", "enum": ["en", "ru"]})], tags=["suppressions"])},
    "/v1/suppressions/{email}": {"delete": _op(
        "Remove an address from the suppression list", _NO_CONTENT,
        parameters=[_path("email", {"type": "string"})], tags=["suppressions"])},
    "/v1/uploads": {
        "get": _op("Contact files", {"200": _json(_items("Upload"))}, tags=["contacts"]),
        "post": {**_op("Start an upload: returns a presigned POST form for S3", {"201": _json({
            "type": "object", "properties": {"upload": _ref("Upload"), "post": {"type": "object"},
                                             "max_bytes": {"type": "integer"}}})}, tags=["contacts"]),
                 "requestBody": {"required": True, "content": {"application/json": {"schema": {
                     "type": "object", "properties": {"filename": {"type": "string"}}}}}}},
    },
    "/v1/uploads/{upload_id}": {
        "get": _op("A contact file and its inspection report", {"200": _json(_ref("Upload"))},
                   parameters=_UPLOAD, tags=["contacts"]),
        "patch": _op("Correct the detected encoding, delimiter, header or email column",
                     {"200": _json(_ref("Upload")), "202": _json(_ref("Upload"), "Being re-inspected")},
                     body="UploadCorrection", parameters=_UPLOAD, tags=["contacts"]),
        "delete": _op("Delete a contact file", _NO_CONTENT, parameters=_UPLOAD, tags=["contacts"]),
    },
    "/v1/uploads/{upload_id}/complete": {"post": _op(
        "The file is in S3: check it, detect its format, inspect it",
        {"200": _json(_ref("Upload"), "Inspected"), "202": _json(_ref("Upload"), "Large file: being inspected")},
        parameters=_UPLOAD, tags=["contacts"])},
    "/v1/campaigns": {
        "get": _op("Campaigns", {"200": _json(_items("Campaign"))}, tags=["campaigns"]),
        "post": _op("Create a draft", {"201": _json(_ref("Campaign"))}, body="CampaignInput",
                    parameters=[_IDEMPOTENCY], tags=["campaigns"]),
    },
    "/v1/campaigns/{campaign_id}": {
        "get": _op("A campaign with its progress", {"200": _json(_ref("Campaign"))}, parameters=_CAMPAIGN,
                   tags=["campaigns"]),
        "patch": _op("Edit a draft", {"200": _json(_ref("Campaign"))}, body="CampaignInput", parameters=_CAMPAIGN,
                     tags=["campaigns"]),
        "delete": _op("Delete a campaign that is not sending", _NO_CONTENT, parameters=_CAMPAIGN,
                      tags=["campaigns"]),
    },
    "/v1/campaigns/{campaign_id}/preview": {"post": {**_op(
        "Render for one contact row; lists merge fields the row lacks", {"200": _json(_ref("Preview"))},
        parameters=_CAMPAIGN, tags=["campaigns"]), "requestBody": {"required": True, "content": {
            "application/json": {"schema": {"type": "object", "properties": {"row": {"type": "integer"}}}}}}}},
    "/v1/campaigns/{campaign_id}/test": {"post": {**_op(
        "Send a test to one address", {"200": _json({"type": "object"}), "422": _json({"type": "object"})},
        parameters=_CAMPAIGN, tags=["campaigns"]), "requestBody": {"required": True, "content": {
            "application/json": {"schema": {"type": "object", "required": ["email"], "properties": {
                "email": {"type": "string"}, "row": {"type": "integer"}}}}}}}},
    "/v1/campaigns/{campaign_id}/start": {"post": _op(
        "Start sending", {"202": _json(_ref("Campaign"))}, parameters=[*_CAMPAIGN, _IDEMPOTENCY],
        tags=["campaigns"])},
    "/v1/campaigns/{campaign_id}/schedule": {
        "post": {**_op("Send later: run the start checks now, start at `at` (ISO 8601 with its UTC offset)",
                       {"200": _json(_ref("Campaign"))}, parameters=_CAMPAIGN, tags=["campaigns"]),
                 "requestBody": {"required": True, "content": {"application/json": {"schema": {
                     "type": "object", "required": ["at"], "properties": {
                         "at": {"type": "string", "format": "date-time"}}}}}}},
        "delete": _op("Unschedule: back to draft", {"200": _json(_ref("Campaign"))}, parameters=_CAMPAIGN,
                      tags=["campaigns"])},
    "/v1/campaigns/{campaign_id}/pause": {"post": _op("Pause", {"200": _json(_ref("Campaign"))},
                                                      parameters=_CAMPAIGN, tags=["campaigns"])},
    "/v1/campaigns/{campaign_id}/resume": {"post": _op("Resume where it stopped", {"202": _json(_ref("Campaign"))},
                                                       parameters=_CAMPAIGN, tags=["campaigns"])},
    "/v1/campaigns/{campaign_id}/cancel": {"post": _op("Cancel; open recipients become skipped",
                                                       {"200": _json(_ref("Campaign"))}, parameters=_CAMPAIGN,
                                                       tags=["campaigns"])},
    "/v1/campaigns/{campaign_id}/recipients": {"get": _op(
        "Recipients with their state and SMTP reply", {"200": _json({"type": "object", "properties": {
            "items": {"type": "array", "items": _ref("Recipient")}, "next_after": _nullable("integer")}})},
        parameters=[*_CAMPAIGN, _query("status", {"type": "string"}), _query("q", {"type": "string"}),
                    _query("after", {"type": "integer"}), _query("limit", {"type": "integer"})],
        tags=["campaigns"])},
    "/v1/campaigns/{campaign_id}/export.csv": {"get": _op(
        "Recipients as CSV (BOM; ';' and Russian headers for lang=ru; the file's own columns)", {"200": _CSV},
        parameters=[*_CAMPAIGN, _query("status", {"type": "string"}), _query("q", {"type": "string"}),
                    _query("lang", {"type": "string", "enum": ["ru", "en"]}),
                    _query("sep", {"type": "string", "enum": ["semicolon", "comma", "tab"]}),
                    _query("tz", {"type": "string", "description": "The reader's time zone (IANA, e.g."
                                  " Europe/Moscow) for the times; UTC when absent"})],
        tags=["campaigns"])},
    "/v1/uploads/{upload_id}/problems.csv": {"get": _op(
        "Every row of the file without a valid address: row in the file, value, problem (ru / en)",
        {"200": _CSV}, parameters=[*_UPLOAD, _query("lang", {"type": "string", "enum": ["ru", "en"]})],
        tags=["contacts"])},
    "/u/{token}": {
        "get": _op("Unsubscribe confirmation page", {"200": _HTML, "404": _HTML}, public=True,
                   parameters=[_path("token", {"type": "string"})], tags=["unsubscribe"]),
        "post": _op("Unsubscribe (RFC 8058 one-click)", {"200": _HTML, "404": _HTML}, public=True,
                    parameters=[_path("token", {"type": "string"})], tags=["unsubscribe"]),
    },
}

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Sendpy API",
        "version": "1",
        "description": "Bulk email through your own mailbox. Authenticate with `Authorization: Bearer <API key>`, "
                       "or from the browser with the session cookie plus the `X-CSRF-Token` header. Errors are "
                       "`{\"error\": {\"code\", \"field\", \"message\"}}`, in English or Russian by Accept-Language.",
    },
    "servers": [{"url": "/"}],
    "security": [{"bearer": []}, {"session": []}],
    "paths": PATHS,
    "components": {
        "schemas": _SCHEMAS,
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "description": "An API key (sp_…)"},
            "session": {"type": "apiKey", "in": "cookie", "name": "sendpy_session"},
        },
    },
}


async def openapi(request: Request) -> Response:
    return JSONResponse(SPEC)
