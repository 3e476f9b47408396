"""Generated requests against a real running center (real Asterisk and PostgreSQL), from its own
OpenAPI document (GET /api/openapi.json, app/web/openapi.yaml), with schemathesis: with the API
token, with no credentials, and as a signed-in agent (session cookie and CSRF token: the panel's
own routes, such as dispositions and customer profiles, are the agent's). No answer may be a
500, and every answer must have a status code, content type and body the document gives for
that operation.

Both well-formed requests (fitting the document) and malformed ones (not fitting it: wrong types,
missing fields, values out of range) are sent: bad input must get a clear 4xx. Each operation
gets a few examples of each, so the module stays well under two minutes.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.stack import Stack

# Alone under make test's two workers: a thousand requests as fast as the app answers.
pytestmark = [pytest.mark.e2e, pytest.mark.alone]

# Examples per operation and mode (well-formed, malformed); LIANLUO_FUZZ_EXAMPLES=50 for a
# deeper hunt by hand (minutes, not seconds).
EXAMPLES_PER_MODE = int(os.environ.get("LIANLUO_FUZZ_EXAMPLES", "4"))

# Operations left out, each for a reason; every other operation of the document is tried.
EXCLUDED = {
    # Reloads the IVR flows: renders every prompt again (speech synthesis, seconds each) and
    # swaps the flows under the calls; tests/e2e/test_ivr_flows.py covers it, with its errors.
    ("POST", "/api/ivr/reload"),
}

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def fuzz(
    stack: Stack, headers: dict[str, str], also_excluded: frozenset[tuple[str, str]] = frozenset()
) -> tuple[int, list[str]]:
    """(requests sent, what failed: one line per operation)."""
    schema = schemathesis.openapi.from_url(stack.web_url + "/api/openapi.json")
    sent, failures = 0, []
    for result in schema.get_all_operations():
        if isinstance(result, Err):  # an operation schemathesis cannot read counts as a failure
            failures.append(f"the document: {result.err()}")
            continue
        operation = result.ok()
        if (operation.method.upper(), operation.path) in EXCLUDED | also_excluded:
            continue
        strategy = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)
        )

        @given(case=strategy)
        @settings(
            max_examples=2 * EXAMPLES_PER_MODE,
            deadline=None,
            database=None,
            derandomize=True,  # the same requests every run: a failure here is reproducible
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def attempt(case: Any) -> None:
            nonlocal sent
            response = case.call(base_url=stack.web_url, headers=headers, allow_redirects=False, timeout=10)
            sent += 1
            case.validate_response(response, checks=CHECKS)

        failure = first_failure(attempt)
        if failure:
            failures.append(f"{operation.method.upper()} {operation.path}: {failure}")
    return sent, failures


def first_failure(attempt: Callable[[], None]) -> str | None:
    try:
        attempt()
    except (Exception, BaseExceptionGroup) as exc:  # schemathesis's failures, any error met
        return f"{type(exc).__name__}: {describe(exc)[:2000]}"
    return None


def describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return " | ".join(describe(e) for e in exc.exceptions) + f" ({exc})"
    return str(exc)


def test_no_generated_request_with_the_api_token_gets_a_500_or_an_undocumented_answer(stack: Stack) -> None:
    sent, failures = fuzz(stack, {"Authorization": f"Bearer {stack.secrets['api_token']}"})
    print(f"with the token: {sent} requests")
    assert not failures, "\n\n".join(failures)
    assert stack.health()[0] == 200, "the center is no longer healthy after the run"


def test_no_generated_request_without_credentials_gets_a_500_or_an_undocumented_answer(stack: Stack) -> None:
    sent, failures = fuzz(stack, {})
    print(f"without credentials: {sent} requests")
    assert not failures, "\n\n".join(failures)


def test_no_generated_request_from_a_signed_in_agent_gets_a_500_or_an_undocumented_answer(
    stack: Stack,
) -> None:
    body = {"username": "1001", "password": stack.secrets["panel_passwords"]["1001"]}
    req = urllib.request.Request(
        stack.web_url + "/login", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        csrf = json.load(resp)["csrf_token"]
        cookie = resp.headers["Set-Cookie"].split(";", 1)[0]
    # Signing out (with the right token, as every request here has) would end the session the
    # rest of the run is about; its answers are tried in the two runs above.
    sent, failures = fuzz(stack, {"Cookie": cookie, "X-CSRF-Token": csrf}, frozenset({("POST", "/logout")}))
    print(f"as agent 1001: {sent} requests")
    assert not failures, "\n\n".join(failures)


# Requests that answered 500 before they were fixed, found by probing each parameter's edges
# (the generated requests above rarely reach them): each must now be a 400 that says why.
ONCE_500 = (
    "/api/recordings?limit=1e400",  # int(float('inf'))
    "/api/recordings?limit=nan",
    "/api/recordings?min_s=nan&max_s=inf",  # no figure to search by
    "/api/recordings?until=9999-12-31",  # a whole day: up to the next midnight, which does not exist
    "/api/reports/interval?date=9999-12-31",
    "/api/reports/queues?from=9999-12-31&to=9999-12-31",
    "/api/reports/staffing?date=9999-12-31",
    "/api/reports/forecast?date=0001-01-01",  # its weeks before
    "/api/reports/campaigns?from=0001-01-01",  # its rolling 30 days before
)


def test_edge_values_that_once_answered_500_get_a_400_saying_why(stack: Stack) -> None:
    for path in ONCE_500:
        status, body = stack.api("GET", path)
        assert status == 400 and body["error_id"] == "bad-request", (path, status, body)
    token = {"Authorization": f"Bearer {stack.secrets['api_token']}"}
    no_recording = "/api/recordings/00000000-0000-0000-0000-000000000000/audio"
    # A Range header that cannot be read (it was read before anything else, unguarded).
    assert raw(stack, "GET", no_recording, {**token, "Range": "bytes=abc"}) == 416
    # A multipart form without its boundary, or not split by it: every form post reads its form
    # the one way (app/web/http.py form_body).
    for path in ("/login", "/logout", "/panel/state", "/faxes/send", "/qa/evaluate", "/qa/mine/answer"):
        for content_type in ("multipart/form-data", "multipart/form-data; boundary=x"):
            assert raw(stack, "POST", path, {"Content-Type": content_type}, b"garbage") == 400, path
    # A body whose Content-Encoding says gzip (or deflate) but is not: aiohttp fails reading it.
    gzip = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    assert raw(stack, "POST", "/api/callbacks", {**token, **gzip}, b"garbage") == 400
    deflate = {"Content-Encoding": "deflate", "Content-Type": "application/x-www-form-urlencoded"}
    assert raw(stack, "POST", "/login", deflate, b"garbage") == 400
    # An Origin header that is no URL at all: no site of ours, so refused, not a 500.
    bad_origin = {"Origin": "http://[", "Content-Type": "application/json"}
    assert raw(stack, "POST", "/login", bad_origin, b'{"username": "1001", "password": "x"}') == 403
    assert raw(stack, "GET", "/ws", bad_origin) == 403
    for page in ("/reports?date=9999-12-31", "/staffing?date=9999-12-31&forecast=0001-01-01"):
        # Without a session these send the caller to sign in (the pages' part is in
        # tests/integration/test_reports.py); an HTTPError here would be the 500.
        with urllib.request.urlopen(stack.web_url + page, timeout=10) as resp:
            assert resp.status == 200, page


def raw(stack: Stack, method: str, path: str, headers: dict[str, str], body: bytes | None = None) -> int:
    req = urllib.request.Request(stack.web_url + path, body, headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
