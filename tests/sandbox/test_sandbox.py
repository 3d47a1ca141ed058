"""The emulator over real HTTP: the API's validation and errors, and its signed status webhooks."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import jwt as pyjwt
import pytest
from aiohttp import web

from smsctl.config import load_private_key, load_settings
from smsctl.errors import ApiRefused, ApiUnavailable
from smsctl.messages.auth import ApplicationJwt
from smsctl.messages.client import MessagesClient
from smsctl.sandbox.emulator import SCENARIOS, Sandbox, config_from_settings, retry_delays
from smsctl.webhooks.signing import Verifier
from tests.helpers import SIGNATURE_SECRET

GOOD = {"to": "14155550101", "from": "14155550199", "channel": "sms", "message_type": "text", "text": "hi"}


class Receiver:
    """A tiny webhook receiver that records requests and answers from a script of status codes."""

    def __init__(self, answers: list[int] | None = None) -> None:
        self.answers = answers or []
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((dict(request.headers), await request.read()))
        status = self.answers.pop(0) if self.answers else 200
        return web.Response(status=status)

    def statuses(self) -> list[str]:
        return [json.loads(body)["status"] for _, body in self.received]


@pytest.fixture
async def receiver(aiohttp_server: Any) -> Receiver:
    recv = Receiver()
    app = web.Application()
    app.router.add_post("/webhooks/status", recv.handle)
    server = await aiohttp_server(app)
    recv.url = str(server.make_url("/webhooks/status"))
    return recv


@pytest.fixture
async def emulator(credentials: dict[str, str], receiver: Receiver) -> AsyncIterator[Sandbox]:
    settings = load_settings({"VONAGE_API_SECRET": "s3cret"})
    config = config_from_settings(settings, status_url=receiver.url, time_scale=0.001, rate=1000)
    async with Sandbox(config) as sandbox:
        yield sandbox


async def post(
    url: str, body: Any, auth: str | None, raw: bytes | None = None
) -> tuple[int, Any, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = auth
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            url + "/v1/messages", data=raw if raw is not None else json.dumps(body), headers=headers
        ) as response,
    ):
        return response.status, response.headers.copy(), json.loads(await response.read())


def basic(key: str = "abcd1234", secret: str = "s3cret") -> str:
    return "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()


def bearer() -> str:
    settings = load_settings()
    key = load_private_key(settings)
    assert key is not None
    return ApplicationJwt(settings.require("VONAGE_APPLICATION_ID", ""), key).authorization()


async def test_accepts_jwt_and_basic(emulator: Sandbox) -> None:
    for auth in (bearer(), basic()):
        status, headers, body = await post(emulator.url, GOOD, auth)
        assert status == 202 and "X-Request-Id" in headers
        assert set(body) == {"message_uuid"}


@pytest.mark.parametrize(
    "auth", [None, "Basic " + base64.b64encode(b"abcd1234:wrong").decode(), "Bearer x.y.z"]
)
async def test_refuses_bad_credentials_with_401_problem(emulator: Sandbox, auth: str | None) -> None:
    status, headers, body = await post(emulator.url, GOOD, auth)
    assert status == 401 and headers["Content-Type"].startswith("application/problem+json")
    assert body["title"] == "You did not provide correct credentials." and body["instance"]


@pytest.mark.parametrize(
    ("change", "title", "invalid"),
    [
        ({"to": "+14155550101"}, "Invalid recipient", None),
        ({"to": "0123"}, "Invalid recipient", None),
        ({"from": "Too Long Sender"}, "Invalid sender", None),
        ({"text": ""}, "Invalid params", "text"),
        ({"text": "x" * 3201}, "Invalid params", "text"),
        ({"ttl": 19}, "Invalid params", "ttl"),
        ({"client_ref": "r" * 101}, "Invalid client reference", None),
        ({"sms": {"encoding_type": "latin1"}}, "Invalid params", "sms.encoding_type"),
        ({"sms": "text"}, "Invalid params", "sms.encoding_type"),
        ({"webhook_version": "v2"}, "Invalid params", "webhook_version"),
        ({"webhook_url": "/webhooks/status"}, "Invalid params", "webhook_url"),
        ({"webhook_url": "ftp://example.com/status"}, "Invalid params", "webhook_url"),
        ({"webhook_url": 42}, "Invalid params", "webhook_url"),
        ({"from": "1234567890123456"}, "Invalid sender", None),
        ({"channel": "mms"}, "Unsupported channel", None),
        ({"message_type": "image"}, "Invalid message type", None),
    ],
)
async def test_validation_errors_are_422(
    emulator: Sandbox, change: dict[str, Any], title: str, invalid: str | None
) -> None:
    status, headers, body = await post(emulator.url, {**GOOD, **change}, basic())
    assert status == 422 and headers["Content-Type"].startswith("application/json")
    assert body["title"] == title
    if invalid:
        assert [p["name"] for p in body["invalid_parameters"]] == [invalid]
    assert emulator.stats.requests[-1].status == 422


@pytest.mark.parametrize(
    "change",
    [{"sms": {"encoding_type": "unicode"}}, {"webhook_version": "v0.1"}, {"from": "12345"},
     {"webhook_url": "http://127.0.0.1:1/webhooks/status"}, {"client_ref": "r" * 100}],
)  # fmt: skip
async def test_valid_options_are_accepted(emulator: Sandbox, change: dict[str, Any]) -> None:
    status, _, _ = await post(emulator.url, {**GOOD, **change}, basic())
    assert status == 202


async def test_client_ref_error_names_the_limit_it_enforces(emulator: Sandbox) -> None:
    _, _, body = await post(emulator.url, {**GOOD, "client_ref": "r" * 101}, basic())
    assert "up to 100 characters" in body["detail"]


async def test_invalid_json_is_422(emulator: Sandbox) -> None:
    status, _, body = await post(emulator.url, None, basic(), raw=b'{"to": "1"')
    assert status == 422 and body["title"] == "The request body did not contain valid JSON"


@pytest.mark.integration
async def test_rate_limit_answers_429_with_headers(credentials: dict[str, str]) -> None:
    settings = load_settings({"VONAGE_API_SECRET": "s3cret"})
    config = config_from_settings(settings, status_url=None, time_scale=0.001, rate=2)
    async with Sandbox(config) as sandbox:
        before = int(time.time())
        statuses = [(await post(sandbox.url, GOOD, basic()))[:2] for _ in range(3)]
        after = time.time()
    assert [s for s, _ in statuses] == [202, 202, 429]
    headers = statuses[2][1]
    assert headers["Retry-After"] == "1" and headers["X-RateLimit-Limit"] == "2"
    assert headers["X-RateLimit-Remaining"] == "0"
    # The window resets within a second of the first request: an epoch second, not a delay.
    assert before <= int(headers["X-RateLimit-Reset"]) <= after + 1


async def webhooks_for(
    emulator: Sandbox, receiver: Receiver, to: str, count: int
) -> list[tuple[dict[str, str], bytes]]:
    status, _, body = await post(emulator.url, {**GOOD, "to": to, "client_ref": "ref-1"}, bearer())
    assert status == 202
    await emulator.wait_idle(10)
    got = [(h, b) for h, b in receiver.received if json.loads(b)["message_uuid"] == body["message_uuid"]]
    assert len(got) == count, receiver.statuses()
    return got


async def test_webhooks_are_signed_as_vonage_signs_them(emulator: Sandbox, receiver: Receiver) -> None:
    got = await webhooks_for(emulator, receiver, "14155550101", 2)
    verifier = Verifier([SIGNATURE_SECRET.encode()], api_key="abcd1234")
    for headers, body in got:
        verified = verifier.verify([headers["Authorization"]], body)
        assert verified.claims["iss"] == "Vonage" and verified.claims["api_key"] == "abcd1234"
        assert verified.claims["application_id"] and verified.claims["jti"]
        assert b" " not in body  # compact JSON, so raw-body and re-serialised hashes agree
    submitted, delivered = (json.loads(b) for _, b in got)
    assert (submitted["status"], delivered["status"]) == ("submitted", "delivered")
    assert delivered["client_ref"] == "ref-1" and delivered["channel"] == "sms"
    assert delivered["sms"] == {"count_total": "1"} and delivered["usage"]["currency"] == "EUR"
    assert delivered["timestamp"].endswith("Z")


@pytest.mark.parametrize(
    ("to", "expected"),
    [
        ("14155550110", ["submitted", "rejected"]),
        ("14155550120", ["submitted", "undeliverable"]),
        ("14155550140", ["submitted"]),
        ("14155550150", ["submitted", "delivered", "delivered"]),
        ("14155550160", ["delivered", "submitted"]),
    ],
)
async def test_scenarios(emulator: Sandbox, receiver: Receiver, to: str, expected: list[str]) -> None:
    got = await webhooks_for(emulator, receiver, to, len(expected))
    assert [json.loads(b)["status"] for _, b in got] == expected
    final = json.loads(got[-1][1]) if expected[-1] != "submitted" else json.loads(got[0][1])
    if final["status"] in ("rejected", "undeliverable"):
        assert final["error"]["title"] == SCENARIOS[to].steps[-1].error_code
        assert final["error"]["detail"]
    if to == "14155550150":
        assert got[1][1] == got[2][1] and got[1][0]["Authorization"] != got[2][0]["Authorization"]


async def test_multipart_scenario_reports_each_segment(emulator: Sandbox, receiver: Receiver) -> None:
    got = await webhooks_for(emulator, receiver, "14155550170", 2)
    final = json.loads(got[1][1])
    assert final["sms"]["count_total"] == "3" and len(final["sms"]["segments"]) == 3


async def test_unsigned_callback_is_retried_signed_after_a_5xx(emulator: Sandbox, receiver: Receiver) -> None:
    receiver.answers = [503]
    got = await webhooks_for(emulator, receiver, "14155550180", 3)
    assert "Authorization" not in got[0][0] and "Authorization" in got[1][0]
    assert got[0][1] == got[1][1]


async def test_retries_on_5xx_and_429_but_not_on_4xx(emulator: Sandbox, receiver: Receiver) -> None:
    receiver.answers = [500, 429, 200, 400]
    got = await webhooks_for(emulator, receiver, "14155550101", 4)
    assert [json.loads(b)["status"] for _, b in got] == ["submitted"] * 3 + ["delivered"]
    attempts = [w.attempt for w in emulator.stats.webhooks]
    assert attempts == [1, 2, 3, 1]


def test_retry_schedule_is_vonages() -> None:
    delays = retry_delays(1.0)
    assert delays[:9] == [5, 10, 20, 40, 80, 160, 320, 640, 900]
    assert set(delays[9:]) == {900} and sum(delays) <= 24 * 3600 < sum(delays) + 900


async def test_client_parses_422_invalid_parameters(emulator: Sandbox) -> None:
    from smsctl.messages.auth import BasicCredentials

    async with MessagesClient(emulator.url, BasicCredentials("abcd1234", "s3cret")) as client:
        with pytest.raises(ApiRefused) as caught:
            await client.send({**GOOD, "ttl": 5}, "ref")
    problem = caught.value.problem
    assert (problem.status, problem.title) == (422, "Invalid params")
    assert problem.invalid_parameters == [{"name": "ttl", "reason": "must be an integer from 20 to 604800"}]
    assert "ttl: must be an integer" in caught.value.message


@pytest.mark.integration
async def test_client_gives_up_after_bounded_429s(credentials: dict[str, str]) -> None:
    settings = load_settings({"VONAGE_API_SECRET": "s3cret"})
    config = config_from_settings(settings, status_url=None, time_scale=0.001, rate=1)
    from smsctl.messages.auth import BasicCredentials

    async with (
        Sandbox(config) as sandbox,
        MessagesClient(sandbox.url, BasicCredentials("abcd1234", "s3cret"), max_throttle_retries=0) as client,
    ):
        await client.send(GOOD, "a")
        with pytest.raises(ApiUnavailable, match="still throttling"):
            await client.send(GOOD, "b")


async def test_one_jwt_for_many_sends(emulator: Sandbox) -> None:
    settings = load_settings()
    key = load_private_key(settings)
    assert key is not None
    jwt = ApplicationJwt(settings.require("VONAGE_APPLICATION_ID", ""), key)
    async with MessagesClient(emulator.url, jwt) as client:
        results = await asyncio.gather(*(client.send(GOOD, f"r{i}") for i in range(25)))
    assert len({r.message_uuid for r in results}) == 25
    assert jwt.minted == 1


async def test_a_verified_token_is_remembered_only_until_it_expires(emulator: Sandbox) -> None:
    settings = load_settings()
    key = load_private_key(settings)
    assert key is not None
    application = settings.require("VONAGE_APPLICATION_ID", "")
    good = "Bearer " + ApplicationJwt(application, key).mint()
    assert (await post(emulator.url, GOOD, good))[0] == 202
    assert (await post(emulator.url, GOOD, good))[0] == 202  # served from the verified tokens
    assert (await post(emulator.url, GOOD, good[:-4] + "AAAA"))[0] == 401  # a tampered copy is verified
    expired = ApplicationJwt(application, key, clock=lambda: time.time() - 3600).mint()
    assert (await post(emulator.url, GOOD, "Bearer " + expired))[0] == 401
    token = good.removeprefix("Bearer ")
    claims = pyjwt.decode(token, options={"verify_signature": False})
    assert emulator._verified_tokens == {token: claims["exp"]}  # remembered no longer than it is valid


@pytest.mark.parametrize(
    ("offset", "expected"),
    [(0, None), (45, None), (600, "600 s ahead of the API's"), (-3600, "3600 s behind the API's")],
)
def test_a_401_with_a_distant_date_blames_the_clock(offset: float, expected: str | None) -> None:
    from email.utils import formatdate

    from smsctl.messages.client import clock_hint

    now = 1_800_000_000.0
    hint = clock_hint(formatdate(now - offset, usegmt=True), now)
    assert (hint is None) if expected is None else (expected in (hint or ""))
    assert clock_hint("not a date", now) is None and clock_hint(None, now) is None
