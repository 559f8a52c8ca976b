"""The retry rules of the direct Responses stream, which must match the SDK's (wire.py)."""

from __future__ import annotations

import email.utils
import time

import httpx2
import openai
import pytest

from bot.assistant import wire


def headers(**values: str) -> httpx2.Headers:
    return httpx2.Headers({k.replace("_", "-"): v for k, v in values.items()})


@pytest.mark.parametrize(
    ("given", "seconds"),
    [
        (headers(retry_after_ms="250"), 0.25),
        (headers(retry_after="2"), 2.0),
        (headers(retry_after="1.5", retry_after_ms="100"), 0.1),  # milliseconds win
        (headers(retry_after="inf"), wire.MAX_RETRY_AFTER_S + 1),
        (headers(retry_after="soon"), None),
        (headers(), None),
    ],
)
def test_retry_after_is_read_as_the_sdk_reads_it(given: httpx2.Headers, seconds: float | None) -> None:
    assert wire._retry_after(given) == seconds


def test_a_retry_after_date_is_seconds_from_now() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    after = wire._retry_after(headers(retry_after=when))
    assert after is not None and 28 <= after <= 31


@pytest.mark.parametrize(
    ("status", "given", "retried"),
    [
        (429, headers(), True),
        (408, headers(), True),
        (409, headers(), True),
        (503, headers(), True),
        (400, headers(), False),
        (404, headers(), False),
        (400, headers(x_should_retry="true"), True),
        (503, headers(x_should_retry="false"), False),
        (429, headers(retry_after="600"), False),  # longer than anyone should wait in a turn
    ],
)
def test_which_answers_are_retried(status: int, given: httpx2.Headers, retried: bool) -> None:
    assert wire._should_retry(status, given) is retried


def test_backoff_honours_retry_after_and_otherwise_doubles_with_jitter() -> None:
    assert wire._backoff(0, headers(retry_after="3")) == 3.0
    for attempt, top in ((0, 0.5), (1, 1.0), (2, 2.0), (6, 8.0)):
        delays = [wire._backoff(attempt, None) for _ in range(50)]
        assert all(0.75 * top <= d <= top for d in delays)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
        (403, openai.PermissionDeniedError),
        (404, openai.NotFoundError),
        (409, openai.ConflictError),
        (422, openai.UnprocessableEntityError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (502, openai.InternalServerError),
        (418, openai.APIStatusError),
    ],
)
def test_an_error_answer_becomes_the_sdks_exception(status: int, kind: type[Exception]) -> None:
    body = b'{"error": {"message": "Nope.", "type": "invalid_request_error", "code": "bad_thing"}}'
    request = httpx2.Request("POST", "http://x/v1/responses")
    error = wire._status_error(status, headers(x_request_id="req_1"), body, request)
    assert type(error) is kind
    assert error.message == f"Error code: {status} - Nope."
    assert error.code == "bad_thing" and error.status_code == status and error.request_id == "req_1"


def test_a_body_that_is_not_json_is_kept_as_text() -> None:
    request = httpx2.Request("POST", "http://x/v1/responses")
    error = wire._status_error(502, headers(), b"<html>Bad gateway</html>", request)
    assert error.message == "Error code: 502" and error.body == "<html>Bad gateway</html>"
