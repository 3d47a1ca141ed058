"""The listener in-process (aiohttp test client, real store): every bad input, ordering, storage faults."""

from __future__ import annotations

import base64
import gzip
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
from aiohttp.test_utils import TestClient

from smsctl.config import StoreKind, StoreLocation
from smsctl.history.backends import open_store
from smsctl.history.writer import StoreWriter
from smsctl.webhooks import server
from smsctl.webhooks.server import Counters, ListenerEvent, WebhookApp
from smsctl.webhooks.signing import Verifier, sign
from tests.helpers import SIGNATURE_SECRET, WebhookTestServer, signed_headers, stored

UUID = "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab"
PREVIOUS_SECRET = "previous-secret-previous-secret-0123"
FIXTURES = Path(__file__).parents[1] / "fixtures"  # copied from shared/vonage/fixtures


def status_body(
    status: str = "submitted", uuid: str = UUID, ts: str = "2025-02-03T12:14:25Z", **extra: Any
) -> bytes:
    body = {"message_uuid": uuid, "to": "14155550101", "from": "14155550199", "timestamp": ts,
            "status": status, "channel": "sms", **extra}  # fmt: skip
    return json.dumps(body, separators=(",", ":")).encode()


@pytest.fixture
def writer(store_at: StoreLocation) -> Iterator[StoreWriter]:
    w = StoreWriter(store_at)
    yield w
    w.close()


@pytest.fixture
def events() -> list[ListenerEvent]:
    return []


@pytest.fixture
async def client(
    aiohttp_client: Any, writer: StoreWriter, events: list[ListenerEvent]
) -> AsyncIterator[TestClient]:
    verifier = Verifier([SIGNATURE_SECRET.encode(), PREVIOUS_SECRET.encode()], api_key="abcd1234")
    yield await aiohttp_client(WebhookTestServer(WebhookApp(writer, verifier, events.append, Counters())))


def test_the_writer_thread_waits_for_the_event_loop_to_block_instead_of_preempting_it(
    writer: StoreWriter,
) -> None:
    """SCHED_BATCH (scheduling.py): a woken writer would only wait for the GIL the loop holds."""
    import os

    assert writer.run_sync(lambda store: os.sched_getscheduler(0)) == os.SCHED_BATCH
    assert os.sched_getscheduler(0) != os.SCHED_BATCH  # the caller's own thread is left alone


def counts(where: StoreLocation) -> dict[str, int]:
    store = open_store(where)
    try:
        return store.counts()
    finally:
        store.close()


def drop_table(where: StoreLocation, table: str) -> None:
    if where.path is not None:
        with sqlite3.connect(where.path) as conn:
            conn.execute(f"DROP TABLE {table}")
        return
    import psycopg

    with psycopg.connect(where.url or "", autocommit=True) as conn:
        conn.execute(f"DROP TABLE {table}")


NOTHING = {
    "messages": 0,
    "events": 0,
    "message_status": 0,
    "dead_letters": 0,
    "inbound": 0,
    "optout_events": 0,
}


async def post(
    client: TestClient, body: bytes, headers: dict[str, str] | None = None, path: str = "/webhooks/status"
) -> int:
    response = await client.post(path, data=body, headers=headers or {})
    return response.status


def token(claims: dict[str, Any], secret: str = SIGNATURE_SECRET, algorithm: str = "HS256", **kw: Any) -> str:
    return "Bearer " + pyjwt.encode(claims, secret, algorithm=algorithm, **kw)


def claims_for(body: bytes, **overrides: Any) -> dict[str, Any]:
    import hashlib

    base = {"iat": int(time.time()), "jti": "j", "iss": "Vonage",
            "payload_hash": hashlib.sha256(body).hexdigest(), "api_key": "abcd1234"}  # fmt: skip
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


async def test_a_signed_status_is_stored_and_acknowledged(
    client: TestClient, store_at: StoreLocation, events: list[ListenerEvent]
) -> None:
    body = status_body()
    assert await post(client, body, signed_headers(body, api_key="abcd1234")) == 200
    assert counts(store_at)["events"] == 1
    assert events[-1].kind == "accepted" and events[-1].applied and events[-1].applied.status == "submitted"


def _none_token(body: bytes) -> str:
    encode = lambda data: base64.urlsafe_b64encode(data).rstrip(b"=").decode()  # noqa: E731
    return encode(b'{"alg":"none","typ":"JWT"}') + "." + encode(json.dumps(claims_for(body)).encode()) + "."


def _raw_claims_token(body: bytes, claims_json: str) -> str:
    """A correctly signed HS256 token whose claims are the given JSON text, verbatim."""
    import hashlib
    import hmac

    encode = lambda data: base64.urlsafe_b64encode(data).rstrip(b"=").decode()  # noqa: E731
    signing_input = encode(b'{"alg":"HS256","typ":"JWT"}') + "." + encode(claims_json.encode())
    signature = hmac.new(SIGNATURE_SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return "Bearer " + signing_input + "." + encode(signature)


def _hash(body: bytes) -> str:
    import hashlib

    return hashlib.sha256(body).hexdigest()


# name -> (headers for a body, expected HTTP status, expected reason). Keyed by name, so a new case
# is a new test id and none can be skipped by an off-by-one in a range().
FORGED: dict[str, tuple[Callable[[bytes], dict[str, str]], int, str]] = {
    "no Authorization": (lambda b: {}, 503, "missing_signature"),
    "Basic scheme": (lambda b: {"Authorization": "Basic YTpi"}, 401, "malformed_authorization"),
    "empty Bearer": (lambda b: {"Authorization": "Bearer "}, 401, "malformed_authorization"),
    "huge token": (lambda b: {"Authorization": "Bearer " + "a" * 5000}, 401, "token_too_large"),
    "two segments": (lambda b: {"Authorization": "Bearer abc.def"}, 401, "malformed_token"),
    "garbage base64": (lambda b: {"Authorization": "Bearer !!!.@@@.###"}, 401, "malformed_token"),
    "alg none": (lambda b: {"Authorization": "Bearer " + _none_token(b)}, 401, "bad_algorithm"),
    "HS512": (lambda b: {"Authorization": token(claims_for(b), algorithm="HS512")}, 401, "bad_algorithm"),
    "wrong secret": (
        lambda b: {"Authorization": token(claims_for(b), secret="wrong-secret-wrong-secret-wrong-00")},
        401,
        "bad_signature",
    ),
    "no payload_hash": (
        lambda b: {"Authorization": token(claims_for(b, payload_hash=None))},
        401,
        "invalid_claims",
    ),
    "no iat": (lambda b: {"Authorization": token(claims_for(b, iat=None))}, 401, "invalid_claims"),
    "iat not a number": (
        lambda b: {"Authorization": token(claims_for(b, iat="soon"))},
        401,
        "invalid_claims",
    ),
    "iat 10**400": (
        lambda b: {
            "Authorization": _raw_claims_token(b, f'{{"iat": 1{"0" * 400}, "payload_hash": "{_hash(b)}"}}')
        },
        401,
        "invalid_claims",
    ),
    "iat NaN": (
        lambda b: {"Authorization": _raw_claims_token(b, f'{{"iat": NaN, "payload_hash": "{_hash(b)}"}}')},
        401,
        "invalid_claims",
    ),
    "iat -Infinity": (
        lambda b: {
            "Authorization": _raw_claims_token(b, f'{{"iat": -Infinity, "payload_hash": "{_hash(b)}"}}')
        },
        401,
        "invalid_claims",
    ),
    "payload_hash a number": (
        lambda b: {"Authorization": token(claims_for(b, payload_hash=12))},
        401,
        "invalid_claims",
    ),
    "payload_hash non-ascii": (
        lambda b: {"Authorization": token(claims_for(b, payload_hash="é" * 64))},
        401,
        "invalid_claims",
    ),
    "hash of another body": (lambda b: {"Authorization": token(claims_for(b + b" "))}, 401, "hash_mismatch"),
    "wrong issuer": (lambda b: {"Authorization": token(claims_for(b, iss="Mallory"))}, 401, "wrong_issuer"),
    "wrong api_key": (
        lambda b: {"Authorization": token(claims_for(b, api_key="other"))},
        401,
        "wrong_api_key",
    ),
    "expired exp": (
        lambda b: {"Authorization": token(claims_for(b, exp=int(time.time()) - 3600))},
        401,
        "expired_token",
    ),
}


@pytest.mark.parametrize("name", sorted(FORGED))
async def test_bad_authorization_is_rejected_and_nothing_stored(client: TestClient, store_at: StoreLocation,
                                                                events: list[ListenerEvent], name: str) -> None:  # fmt: skip
    body = status_body()
    headers, expected, reason = FORGED[name]
    response = await client.post("/webhooks/status", data=body, headers=headers(body))
    assert response.status == expected, name
    if expected == 503:
        assert response.headers["Retry-After"] == "5"
    assert events[-1].kind == "rejected" and events[-1].reason == reason, name
    assert counts(store_at) == NOTHING


async def test_two_authorization_headers_are_rejected(client: TestClient, store_at: StoreLocation) -> None:
    body = status_body()
    auth = signed_headers(body)["Authorization"]
    response = await client.post(
        "/webhooks/status", data=body, headers=[("Authorization", auth), ("Authorization", auth)]
    )
    assert response.status == 401 and counts(store_at) == NOTHING


async def test_a_one_character_tamper_of_body_or_signature_fails(
    client: TestClient, store_at: StoreLocation
) -> None:
    body = status_body()
    auth = signed_headers(body)["Authorization"]
    tampered_sig = auth[:-1] + ("A" if auth[-1] != "A" else "B")
    assert await post(client, body, {"Authorization": tampered_sig}) == 401
    assert await post(client, body.replace(b"submitted", b"delivered"), {"Authorization": auth}) == 401
    assert await post(client, body + b"\n", {"Authorization": auth}) == 401
    pretty = json.dumps(json.loads(body), indent=2).encode()
    assert await post(client, pretty, {"Authorization": auth}) == 401
    assert counts(store_at) == NOTHING


async def test_lowercase_bearer_and_previous_secret_are_accepted(
    client: TestClient, store_at: StoreLocation
) -> None:
    body = status_body()
    assert await post(client, body, {"Authorization": "bearer " + sign(body, SIGNATURE_SECRET)}) == 200
    body2 = status_body("delivered")
    assert await post(client, body2, {"Authorization": "Bearer " + sign(body2, PREVIOUS_SECRET)}) == 200
    assert counts(store_at)["events"] == 2


async def test_stale_and_future_tokens_are_accepted_and_counted(
    client: TestClient, store_at: StoreLocation
) -> None:
    old = status_body("submitted")
    future = status_body("delivered")
    assert await post(client, old, signed_headers(old, iat=int(time.time()) - 3600)) == 200
    assert await post(client, future, signed_headers(future, iat=int(time.time()) + 600)) == 200
    health = await (await client.get("/healthz")).json()
    assert (health["stale_tokens"], health["clock_skew"], health["accepted"]) == (1, 1, 2)


async def test_max_token_age_makes_stale_tokens_401(
    aiohttp_client: Any, writer: StoreWriter, store_at: StoreLocation
) -> None:
    verifier = Verifier([SIGNATURE_SECRET.encode()], max_token_age=300)
    strict = await aiohttp_client(WebhookTestServer(WebhookApp(writer, verifier, lambda e: None)))
    body = status_body()
    assert await post(strict, body, signed_headers(body, iat=int(time.time()) - 301)) == 401
    assert await post(strict, body, signed_headers(body, iat=int(time.time()) - 200)) == 200
    assert counts(store_at)["events"] == 1


async def test_oversized_body_is_413_without_reading(client: TestClient, store_at: StoreLocation) -> None:
    body = b"x" * (64 * 1024 + 1)
    assert await post(client, body, signed_headers(body)) == 413
    assert counts(store_at) == NOTHING


async def test_chunked_body_growing_past_the_limit_is_413(
    client: TestClient, store_at: StoreLocation
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(80):
            yield b"x" * 1024

    response = await client.post("/webhooks/status", data=chunks(), headers={"Authorization": "Bearer a.b.c"})
    assert response.status == 413 and counts(store_at) == NOTHING


async def test_compressed_body_is_415(client: TestClient, store_at: StoreLocation) -> None:
    body = gzip.compress(status_body())
    headers = {**signed_headers(body), "Content-Encoding": "gzip"}
    assert await post(client, body, headers) == 415
    assert counts(store_at) == NOTHING


async def test_slow_body_is_408(
    client: TestClient, store_at: StoreLocation, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    monkeypatch.setattr(server, "BODY_DEADLINE", 0.2)

    async def slow() -> AsyncIterator[bytes]:
        yield b'{"message_uuid":'
        await asyncio.sleep(1.0)
        yield b'"x"}'

    response = await client.post("/webhooks/status", data=slow(), headers={"Authorization": "Bearer a.b.c"})
    assert response.status == 408 and counts(store_at) == NOTHING


@pytest.mark.parametrize(
    ("method", "path", "expected", "allow"),
    [("GET", "/webhooks/status", 405, "POST"), ("PUT", "/healthz", 405, "GET,HEAD"), ("POST", "/nope", 404, None),
     ("GET", "/webhooks/status/", 404, None)],
)  # fmt: skip
async def test_wrong_method_or_path(
    client: TestClient, method: str, path: str, expected: int, allow: str | None, store_at: StoreLocation
) -> None:
    response = await client.request(method, path, data=status_body())
    assert (response.status, response.headers.get("Allow")) == (expected, allow)
    assert counts(store_at)["events"] == 0


async def test_health_answers_head_without_a_body(client: TestClient) -> None:
    response = await client.head("/healthz")
    assert response.status == 200 and await response.read() == b""


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe", "not valid UTF-8"),
        (b"", "not JSON"),
        (b"[1,2]", "JSON list"),
        (b'"text"', "JSON str"),
        (b'{"n":' + b"1" * 5000 + b"}", "not JSON"),
        (b'{"status":"delivered"}', "message_uuid"),
        (b'{"message_uuid":"x"}', "status"),
        (b'{"message_uuid":123,"status":"delivered"}', "message_uuid"),
        (b'{"message_uuid":"x","status":"delivered","client_ref":"\\ud800"}', "lone surrogate"),
        (b'{"message_uuid":"x","status":"delivered","to":"\\uDFFF1415"}', "lone surrogate"),
    ],
)
async def test_signed_but_unusable_bodies_are_dead_letters(client: TestClient, store_at: StoreLocation, events: list[ListenerEvent],
                                                           body: bytes, reason: str) -> None:  # fmt: skip
    response = await client.post("/webhooks/status", data=body, headers=signed_headers(body))
    assert response.status == 200
    assert events[-1].kind == "dead_letter" and reason in (events[-1].reason or "")
    assert counts(store_at)["dead_letters"] == 1 and counts(store_at)["events"] == 0


async def test_an_inbound_text_with_a_lone_surrogate_is_a_dead_letter_not_a_500(
    client: TestClient, store_at: StoreLocation
) -> None:
    body = b'{"message_uuid":"i-1","from":"447700900001","to":"x","text":"hi \\ud83d","timestamp":"x"}'
    assert await post(client, body, signed_headers(body), path="/webhooks/inbound") == 200
    assert counts(store_at)["dead_letters"] == 1 and counts(store_at)["inbound"] == 0
    paired = (
        b'{"message_uuid":"i-2","from":"447700900001","to":"x","text":"hi \\ud83d\\ude00","timestamp":"x"}'
    )
    assert await post(client, paired, signed_headers(paired), path="/webhooks/inbound") == 200
    assert counts(store_at)["inbound"] == 1


async def test_deeply_nested_json_under_the_size_limit_is_a_dead_letter(
    client: TestClient, store_at: StoreLocation
) -> None:
    body = b"[" * 30_000 + b"]" * 30_000
    assert await post(client, body, signed_headers(body)) == 200
    assert counts(store_at)["dead_letters"] == 1


async def test_redelivery_is_a_duplicate(
    client: TestClient, store_at: StoreLocation, events: list[ListenerEvent]
) -> None:
    body = status_body("delivered")
    for _ in range(3):  # Vonage retries re-sign: new jti and iat each time
        assert await post(client, body, signed_headers(body)) == 200
    assert counts(store_at)["events"] == 1
    assert [e.kind for e in events] == ["accepted", "duplicate", "duplicate"]
    assert stored(store_at, lambda s: s.current_status(UUID)).duplicates == 2


async def test_status_never_regresses(client: TestClient, store_at: StoreLocation) -> None:
    for status, ts in (("delivered", "2025-02-03T12:14:30Z"), ("submitted", "2025-02-03T12:14:25Z")):
        body = status_body(status, ts=ts)
        assert await post(client, body, signed_headers(body)) == 200
    assert stored(store_at, lambda s: s.current_status(UUID)).status == "delivered"
    assert [(e.status, e.anomaly) for e in stored(store_at, lambda s: s.timeline(UUID))] == [
        ("delivered", None),
        ("submitted", "late"),
    ]


async def test_conflicting_final_is_flagged_and_the_first_stands(
    client: TestClient, store_at: StoreLocation
) -> None:
    for status in ("delivered", "rejected"):
        body = status_body(status)
        assert await post(client, body, signed_headers(body)) == 200
    current = stored(store_at, lambda s: s.current_status(UUID))
    assert current is not None and (current.status, current.conflict) == ("delivered", True)
    assert stored(store_at, lambda s: s.timeline(UUID))[-1].anomaly == "conflicting_final"


async def test_unknown_status_and_bad_timestamp_are_kept(client: TestClient, store_at: StoreLocation) -> None:
    for body in (status_body("delivered"), status_body("read"), status_body("failed", ts="yesterday")):
        assert await post(client, body, signed_headers(body)) == 200
    assert stored(store_at, lambda s: s.current_status(UUID)).status == "delivered"
    assert [e.anomaly for e in stored(store_at, lambda s: s.timeline(UUID))] == [
        None,
        "unknown_status",
        "bad_timestamp",
    ]


async def test_events_for_unknown_messages_are_kept(client: TestClient, store_at: StoreLocation) -> None:
    body = status_body("submitted", uuid="11111111-2222-4333-8444-555555555555")
    assert await post(client, body, signed_headers(body)) == 200
    assert stored(store_at, lambda s: s.find_message("11111111")).status == "submitted"


async def test_inbound_sms_is_stored_once(
    client: TestClient, store_at: StoreLocation, events: list[ListenerEvent]
) -> None:
    body = (FIXTURES / "inbound-sms-v1.COMPOSED-from-spec-v1.20.0-field-examples.json").read_bytes()
    for _ in range(2):
        assert await post(client, body, signed_headers(body), path="/webhooks/inbound") == 200
    assert counts(store_at)["inbound"] == 1
    assert (
        events[0].kind == "inbound" and events[0].inbound and events[0].inbound.text == "Hello From Vonage!"
    )
    assert events[1].kind == "duplicate"


async def test_legacy_inbound_shape_is_understood(client: TestClient, store_at: StoreLocation) -> None:
    body = (FIXTURES / "inbound-sms-v0.1-legacy.blog-2021-logged.json").read_bytes()
    assert await post(client, body, signed_headers(body), path="/webhooks/inbound") == 200
    inbound = stored(store_at, lambda s: s.recent_inbound(1))[0]
    assert (inbound.from_, inbound.text) == ("447312277109", "Chuck Norris can hear text messages.")


@pytest.mark.parametrize("store_at", [StoreKind.SQLITE], indirect=True)  # SQLite's own lock and page limit
async def test_store_that_cannot_commit_answers_503(
    client: TestClient, writer: StoreWriter, store_at: StoreLocation
) -> None:
    writer.run_sync(lambda s: s.conn.execute("PRAGMA busy_timeout = 100"))  # keep the test quick
    blocker = sqlite3.connect(store_at.path or "", isolation_level=None, timeout=0)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock past the busy timeout
    try:
        body = status_body()
        response = await client.post("/webhooks/status", data=body, headers=signed_headers(body))
        assert response.status == 503 and response.headers["Retry-After"] == "5"
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert counts(store_at)["events"] == 0
    health = await (await client.get("/healthz")).json()
    assert health["status"] == "degraded" and health["store_unavailable"] == 1
    body = status_body()
    assert await post(client, body, signed_headers(body)) == 200  # recovers without a restart
    assert (await (await client.get("/healthz")).json())["status"] == "ok"


@pytest.mark.parametrize("store_at", [StoreKind.SQLITE], indirect=True)  # SQLite's own lock and page limit
async def test_full_disk_answers_503(
    client: TestClient, writer: StoreWriter, store_at: StoreLocation
) -> None:
    page_count = writer.run_sync(lambda s: s.conn.execute("PRAGMA page_count").fetchone()[0])
    writer.run_sync(lambda s: s.conn.execute(f"PRAGMA max_page_count = {page_count}"))
    big = status_body(note="x" * 20_000)
    assert await post(client, big, signed_headers(big)) == 503
    assert counts(store_at)["events"] == 0


async def test_healthz_has_counters_and_no_message_data(client: TestClient) -> None:
    body = status_body()
    await post(client, body, signed_headers(body))
    await post(client, body, {})
    health = await (await client.get("/healthz")).json()
    assert health["accepted"] == 1 and health["rejected"] == {"missing_signature": 1}
    assert UUID not in json.dumps(health) and SIGNATURE_SECRET not in json.dumps(health)


@pytest.mark.parametrize(
    ("fixture", "status", "error_code", "segments"),
    [
        ("status-sms-submitted-all-fields.dotnet-sdk-test.json", "submitted", "1000", "2"),
        ("status-sms-multisegment-delivered.docs-TRUNCATED-brackets-closed.json", "delivered", None, "2"),
        ("status-sms-rejected.COMPOSED-from-spec-v1.20.0-field-examples.json", "rejected", "1000", "2"),
    ],
)
async def test_published_status_payloads_parse(client: TestClient, store_at: StoreLocation, fixture: str, status: str,
                                               error_code: str | None, segments: str) -> None:  # fmt: skip
    body = (FIXTURES / fixture).read_bytes()
    assert await post(client, body, signed_headers(body)) == 200
    event = stored(store_at, lambda s: s.timeline(UUID))[0]
    assert (event.status, event.error_code, event.segments) == (status, error_code, segments)


async def test_previous_secret_use_is_counted(client: TestClient) -> None:
    body = status_body()
    assert await post(client, body, {"Authorization": "Bearer " + sign(body, PREVIOUS_SECRET)}) == 200
    assert (await (await client.get("/healthz")).json())["previous_secret"] == 1


async def test_clock_skew_is_warned_about_once(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    for status in ("submitted", "delivered"):
        body = status_body(status)
        assert await post(client, body, signed_headers(body, iat=int(time.time()) + 3600)) == 200
    warnings = [r for r in caplog.records if r.name == "smsctl.listen"]
    assert len(warnings) == 1 and "check this machine's clock" in warnings[0].getMessage()


async def test_idle_connections_do_not_block_real_traffic(
    client: TestClient, store_at: StoreLocation
) -> None:
    import asyncio

    idle = [await asyncio.open_connection(client.host, client.port) for _ in range(200)]
    try:
        body = status_body()
        assert await post(client, body, signed_headers(body)) == 200
    finally:
        for _, writer in idle:
            writer.close()
    assert counts(store_at)["events"] == 1


async def test_a_v01_status_webhook_is_understood(client: TestClient, store_at: StoreLocation) -> None:
    """Accounts still on webhook_version v0.1: `to`/`from` objects, `error: {code, reason}`."""
    body = (FIXTURES / "status-v0.1-legacy.COMPOSED-from-spec-v0.4.0-field-examples.json").read_bytes()
    assert await post(client, body, signed_headers(body)) == 200
    event = stored(store_at, lambda s: s.timeline("aaaaaaaa-bbbb-cccc-dddd-0123456789ab"))[0]
    assert (event.to, event.from_, event.error_code, event.error_detail) == (
        "447700900000", "447700900001", "1300", "Not part of the provider network",
    )  # fmt: skip
    assert (event.status, event.client_ref, event.anomaly) == (
        "rejected",
        "my-personal-reference",
        None,
    )


@pytest.mark.parametrize(
    "odd",
    [{"to": {"type": "sms"}}, {"to": ["447700900000"]}, {"error": "bad"}, {"error": {"kind": "x"}}],
)
async def test_a_shape_we_cannot_read_is_stored_and_flagged(client: TestClient, store_at: StoreLocation,
                                                            odd: dict[str, Any]) -> None:  # fmt: skip
    body = json.dumps({"message_uuid": UUID, "status": "delivered", "timestamp": "2025-02-03T12:14:25Z",
                       **odd}).encode()  # fmt: skip
    assert await post(client, body, signed_headers(body)) == 200
    event = stored(store_at, lambda s: s.timeline(UUID))[0]
    assert event.anomaly == "unreadable_fields" and json.loads(event.body) == json.loads(body)


async def test_a_store_bug_is_a_500_logged_once_and_counted_never_unavailable(
    client: TestClient, store_at: StoreLocation, caplog: pytest.LogCaptureFixture
) -> None:
    drop_table(store_at, "events")  # a schema that is not what the code expects: our bug
    for status in ("submitted", "delivered"):
        body = status_body(status)
        response = await client.post("/webhooks/status", data=body, headers=signed_headers(body))
        assert response.status == 500 and "Retry-After" not in response.headers
    health = await (await client.get("/healthz")).json()
    assert (health["store_errors"], health["store_unavailable"]) == (2, 0)
    logged = [r for r in caplog.records if r.name == "smsctl.listen" and r.exc_info]
    assert len(logged) == 1 and "internal error" in logged[0].getMessage()


@pytest.mark.parametrize("store_at", [StoreKind.POSTGRESQL], indirect=True)  # SQLite's: the two above
async def test_postgresql_stopped_answers_503_and_recovers_without_a_restart(
    client: TestClient, pg_cluster: Any, store_at: StoreLocation
) -> None:
    first = status_body("submitted")
    assert await post(client, first, signed_headers(first)) == 200
    pg_cluster.pause()
    try:
        body = status_body("delivered", ts="2025-02-03T12:15:00Z")
        response = await client.post("/webhooks/status", data=body, headers=signed_headers(body))
        assert response.status == 503 and response.headers["Retry-After"] == "5"
        health = await (await client.get("/healthz")).json()
        assert health["status"] == "degraded" and health["store_unavailable"] >= 1
    finally:
        pg_cluster.resume()
    assert await post(client, body, signed_headers(body)) == 200  # the same event, retried by Vonage
    assert counts(store_at)["events"] == 2
    assert stored(store_at, lambda s: s.current_status(UUID)).status == "delivered"


async def test_metrics_in_prometheus_text_format(client: TestClient) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    for status in ("submitted", "delivered", "delivered"):  # the last one: a duplicate
        body = status_body(
            status, ts="2025-02-03T12:14:25Z" if status == "submitted" else "2025-02-03T12:15:00Z"
        )
        assert await post(client, body, signed_headers(body)) == 200
    assert await post(client, status_body(), {"Authorization": "Bearer nope"}) == 401
    response = await client.get("/metrics")
    assert response.status == 200 and response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(await response.text())
        for s in family.samples
    }
    assert samples[("smsctl_events_accepted_total", (("status", "delivered"),))] == 1
    assert samples[("smsctl_events_accepted_total", (("status", "submitted"),))] == 1
    assert samples[("smsctl_events_duplicate_total", ())] == 1
    assert samples[("smsctl_requests_rejected_total", (("reason", "malformed_token"),))] == 1
    assert samples[("smsctl_store_batch_size_count", ())] >= 1
    assert (
        samples[("smsctl_store_commit_seconds_bucket", (("le", "+Inf"),))]
        == samples[("smsctl_store_batch_size_count", ())]
    )
    assert samples[("smsctl_store_up", ())] == 1 and samples[("smsctl_store_errors_total", ())] == 0
    assert samples[("smsctl_listeners_alive", ())] == 0  # an app without `smsctl listen` registers nothing
    assert "14155550101" not in await response.text(), "counts only: no message data"


async def test_statuses_vonage_does_not_document_share_one_metrics_label(client: TestClient) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    for n in range(30):  # a secret holder inventing statuses must not invent /metrics series
        body = status_body(f"made-up-{n}", uuid=f"aaaaaaaa-0000-4000-8000-{n:012d}")
        assert await post(client, body, signed_headers(body)) == 200
    response = await client.get("/metrics")
    labels = {
        s.labels["status"]
        for family in text_string_to_metric_families(await response.text())
        for s in family.samples
        if s.name == "smsctl_events_accepted_total"
    }
    assert labels == {"other"}
