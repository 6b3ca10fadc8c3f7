"""The Lambda package, as deployed, answers database-backed routes with browser sessions.

The zip that `sendpy package-lambda` builds is unpacked and imported by an isolated interpreter
(no site-packages, no project checkout) against the test stack's Postgres. That interpreter stays
up between events, like a warm Lambda container, and gets API Gateway HTTP API (v2) events the
way the gateway sends them: cookies in the event's `cookies` list, and `Set-Cookie` answered in
the response's `cookies` list.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.errors import translate

ANSWER_TIMEOUT = 60.0  # a cold start (imports, the pool, migrations) on a busy 2-core machine

DRIVER = """\
import json, sys
sys.path.insert(0, sys.argv[1])  # only the package: -I keeps site-packages and the checkout out
from functions.lambda_handler import handler
for line in sys.stdin:
    try:
        answer = handler(json.loads(line), None)
    except BaseException as exc:  # report it instead of leaving the test waiting
        answer = {"crashed": repr(exc)}
    print(json.dumps(answer), flush=True)
"""


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sendpy.packaging import build

    work = tmp_path_factory.mktemp("lambda")
    package = build(work / "lambda.zip")
    target = work / "unpacked"
    with zipfile.ZipFile(package) as archive:
        archive.extractall(target)
    return target


class WarmLambda:
    """One interpreter running the package's handler; `invoke` sends an event, returns the answer."""

    def __init__(self, package: Path, env: dict[str, str], cwd: Path) -> None:
        script = cwd / "driver.py"
        script.write_text(DRIVER)
        self.process = subprocess.Popen(
            [sys.executable, "-I", str(script), str(package)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=(cwd / "stderr.log").open("w"), text=True, env=env, cwd=cwd)
        self.stderr = cwd / "stderr.log"
        self.answers: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.answers.put(line)

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(event) + "\n")
        self.process.stdin.flush()
        try:
            line = self.answers.get(timeout=ANSWER_TIMEOUT)
        except queue.Empty:
            raise AssertionError(f"no answer in {ANSWER_TIMEOUT} s: {self.stderr.read_text()[-3000:]}") from None
        answer: dict[str, Any] = json.loads(line)
        assert "crashed" not in answer, (answer, self.stderr.read_text()[-3000:])
        return answer

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def warm_lambda(unpacked: Path, app_env: dict[str, str], db: Any, tmp_path: Path) -> Iterator[WarmLambda]:
    # Only what Terraform gives the function, pointed at the test stack; HTTPS as behind CloudFront.
    env = {"PATH": os.environ["PATH"], **app_env, "SENDPY_PUBLIC_BASE_URL": "https://sendpy.example"}
    running = WarmLambda(unpacked, env, tmp_path)
    yield running
    running.stop()


def http_event(method: str, path: str, *, body: dict[str, Any] | None = None, cookies: list[str] | None = None,
               headers: dict[str, str] | None = None) -> dict[str, Any]:
    """An API Gateway HTTP API payload 2.0 event, as the $default stage sends it."""
    event: dict[str, Any] = {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": {"host": "abc123.execute-api.eu-central-1.amazonaws.com", "user-agent": "test",
                    "x-forwarded-for": "203.0.113.7", **(headers or {})},
        "requestContext": {"http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                                    "sourceIp": "203.0.113.7", "userAgent": "test"},
                           "stage": "$default", "requestId": uuid.uuid4().hex, "accountId": "000000000000",
                           "apiId": "abc123", "domainName": "abc123.execute-api.eu-central-1.amazonaws.com",
                           "routeKey": "$default", "timeEpoch": 0},
        "isBase64Encoded": False,
    }
    if body is not None:
        event["body"] = json.dumps(body)
        event["headers"]["content-type"] = "application/json"
    if cookies is not None:
        event["cookies"] = cookies
    return event


def _session_cookies(answer: dict[str, Any]) -> dict[str, str]:
    """name → the full Set-Cookie value, from a v2 response's `cookies` list."""
    assert "set-cookie" not in {name.lower() for name in answer.get("headers", {})}, answer
    return {value.split("=", 1)[0]: value for value in answer.get("cookies") or []}


def _as_request_cookies(set_cookies: dict[str, str]) -> list[str]:
    return [value.split(";", 1)[0] for value in set_cookies.values()]


def test_the_package_registers_logs_in_and_knows_the_session(warm_lambda: WarmLambda) -> None:
    email = f"lambda-{uuid.uuid4().hex[:8]}@example.com"
    password = "a long enough password 42"

    registered = warm_lambda.invoke(http_event("POST", "/v1/auth/register",
                                               body={"email": email, "password": password}))
    assert registered["statusCode"] == 201, registered
    assert json.loads(registered["body"])["user"]["email"] == email
    made = _session_cookies(registered)
    assert set(made) == {"sendpy_session", "sendpy_csrf", "sendpy_device"}, registered
    session = made["sendpy_session"].lower()
    assert "httponly" in session and "secure" in session and "samesite=lax" in session

    logged_in = warm_lambda.invoke(http_event("POST", "/v1/auth/login", body={"email": email, "password": password}))
    assert logged_in["statusCode"] == 200, logged_in
    cookies = _session_cookies(logged_in)
    assert set(cookies) == {"sendpy_session", "sendpy_csrf", "sendpy_device"}, logged_in
    device = cookies["sendpy_device"].lower()  # known-device cookie: only for /v1/auth, never for scripts
    assert "httponly" in device and "path=/v1/auth" in device and "samesite=strict" in device
    assert cookies["sendpy_session"] != made["sendpy_session"]  # a new session for the new log-in
    csrf = json.loads(logged_in["body"])["csrf_token"]

    me = warm_lambda.invoke(http_event("GET", "/v1/me", cookies=_as_request_cookies(cookies)))
    assert me["statusCode"] == 200, me
    assert json.loads(me["body"])["email"] == email

    anonymous = warm_lambda.invoke(http_event("GET", "/v1/me", headers={"accept-language": "ru"}))
    assert anonymous["statusCode"] == 401, anonymous
    error = json.loads(anonymous["body"])["error"]
    assert error["code"] == "unauthorized" and error["message"] == translate("unauthorized", "ru")
    assert any("а" <= ch <= "я" for ch in error["message"].lower())

    # The session lives in Postgres, not in the container: logging out ends it for every request.
    out = warm_lambda.invoke(http_event("POST", "/v1/auth/logout", cookies=_as_request_cookies(cookies),
                                        headers={"x-csrf-token": csrf}))
    assert out["statusCode"] == 204, out
    after = warm_lambda.invoke(http_event("GET", "/v1/me", cookies=_as_request_cookies(cookies)))
    assert after["statusCode"] == 401, after
