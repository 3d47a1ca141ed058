"""The emulator's Reports API over real HTTP, held to a schema written from shared/vonage/reports-api.md
(tests/sandbox/reports_api.schema.json), and the Reports client's own guarantees."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from jsonschema import Draft202012Validator, FormatChecker

from smsctl.config import load_settings
from smsctl.errors import ApiUnavailable
from smsctl.messages.reports import Record, ReportsClient
from smsctl.sandbox.emulator import Sandbox, config_from_settings

SCHEMA = json.loads((Path(__file__).parent / "reports_api.schema.json").read_text())
VALIDATOR = Draft202012Validator(SCHEMA, format_checker=FormatChecker())
BASIC = "Basic " + base64.b64encode(b"abcd1234:s3cret").decode()
GOOD = {"to": "14155550101", "from": "14155550199", "channel": "sms", "message_type": "text", "text": "hi"}


def conforms(body: dict[str, Any]) -> None:
    errors = sorted(VALIDATOR.iter_errors(body), key=str)
    assert not errors, f"{errors[0].message} at {list(errors[0].absolute_path)}"


@pytest.fixture
async def reports_emulator(credentials: dict[str, str]) -> AsyncIterator[Sandbox]:
    settings = load_settings({"VONAGE_API_SECRET": "s3cret"})
    config = config_from_settings(settings, status_url=None, time_scale=0.001, rate=None)
    async with Sandbox(config) as sandbox:
        yield sandbox


async def get(sandbox: Sandbox, auth: str | None = BASIC, **params: str) -> tuple[int, Any]:
    query = {"account_id": "abcd1234", "product": "MESSAGES", "direction": "outbound", **params}
    headers = {"Authorization": auth} if auth else {}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{sandbox.url}/v2/reports/records", params=query, headers=headers) as response,
    ):
        return response.status, await response.json(content_type=None)


async def send(sandbox: Sandbox, count: int, to: str = "14155550101") -> list[str]:
    uuids = []
    async with aiohttp.ClientSession() as session:
        for i in range(count):
            body = dict(GOOD, to=to, client_ref=f"ref-{i}")
            async with session.post(
                f"{sandbox.url}/v1/messages", json=body, headers={"Authorization": BASIC}
            ) as r:
                uuids.append((await r.json())["message_uuid"])
    return uuids


async def test_records_by_id_conform_and_follow_the_message(reports_emulator: Sandbox) -> None:
    uuids = await send(reports_emulator, 3)
    status, body = await get(reports_emulator, id=",".join(uuids))
    assert status == 200
    conforms(body)
    assert [r["message_id"] for r in body["records"]] == uuids and body["request_status"] == "SUCCESS"
    assert "message_body" not in body["records"][0]  # only with include_message=true
    assert (
        reports_emulator.ledger.by_ids(uuids, now=time.time() + 60)[0]["status"] == "delivered"
    )  # its scenario's end
    status, body = await get(reports_emulator, id=uuids[0], include_message="true")
    deadline = time.monotonic() + 10
    while body["records"][0]["status"] != "delivered":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
        status, body = await get(reports_emulator, id=uuids[0], include_message="true")
    conforms(body)
    record = body["records"][0]
    assert record["status"] == "delivered" and record["date_finalized"] and record["latency"] >= 0
    assert record["message_body"] == "hi" and record["country"] == "US" and record["client_ref"] == "ref-0"


@pytest.mark.integration
async def test_a_lost_webhook_is_still_in_the_records(credentials: dict[str, str]) -> None:
    settings = load_settings({"VONAGE_API_SECRET": "s3cret"})
    config = config_from_settings(
        settings, status_url="http://127.0.0.1:9/webhooks/status", time_scale=0.001, rate=None
    )
    events: list[Any] = []
    async with Sandbox(config, on_event=events.append) as sandbox:
        [uuid] = await send(sandbox, 1, to="14155550195")
        assert [e.kind for e in events if e.message_uuid == uuid] == ["dropped", "request"]
        deadline = time.monotonic() + 10
        while (await get(sandbox, id=uuid))[1]["records"][0]["status"] != "delivered":
            assert time.monotonic() < deadline, "the record never became final"
            await asyncio.sleep(0.01)
        assert not sandbox.stats.webhooks  # nothing was ever POSTed


async def test_date_windows_page_with_cursor_and_iv(reports_emulator: Sandbox) -> None:
    reports_emulator.reports.settings.page_size = 4
    await send(reports_emulator, 10)
    now = time.time()
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 60))
    end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 60))
    seen: list[str] = []
    status, body = await get(reports_emulator, date_start=start, date_end=end)
    while True:
        assert status == 200
        conforms(body)
        seen += [r["message_id"] for r in body["records"]]
        if body["request_status"] != "TRUNCATED":
            break
        async with (
            aiohttp.ClientSession() as session,
            session.get(body["_links"]["next"]["href"], headers={"Authorization": BASIC}) as response,
        ):
            status, body = response.status, await response.json()
    assert len(seen) == 10 == len(set(seen))


@pytest.mark.parametrize(("params", "name"), [
    ({"date_start": "2026-01-01T00:00:00Z", "date_end": "2026-01-02T00:00:01Z"}, "date_end"),  # > 24 h
    ({"id": "x", "date_start": "2026-01-01T00:00:00Z", "date_end": "2026-01-01T01:00:00Z"}, "id"),
    ({"id": "x", "account_id": "someone-else"}, "account_id"),
    ({"id": "x", "product": "VOICE"}, "product"),
])  # fmt: skip
async def test_bad_queries_are_400_problems(
    reports_emulator: Sandbox, params: dict[str, str], name: str
) -> None:
    status, body = await get(reports_emulator, **params)
    assert status == 400 and body["type"].startswith("https://") and body["title"]
    assert name in [p["name"] for p in body["invalid_parameters"]]


async def test_only_basic_auth_and_a_tampered_cursor_is_refused(reports_emulator: Sandbox) -> None:
    assert (await get(reports_emulator, auth=None, id="x"))[0] == 401
    assert (await get(reports_emulator, auth="Bearer eyJhbGciOiJSUzI1NiJ9.e30.x", id="x"))[0] == 401
    status, body = await get(
        reports_emulator, auth="Basic " + base64.b64encode(b"abcd1234:nope").decode(), id="x"
    )
    assert status == 401 and body["title"] == "Unauthorized"
    assert (await get(reports_emulator, id="x", cursor=base64.urlsafe_b64encode(b"5:0000").decode(), iv="y"))[
        0
    ] == 400


async def test_more_than_ten_requests_a_second_get_429(reports_emulator: Sandbox) -> None:
    statuses = [(await get(reports_emulator, id="x"))[0] for _ in range(12)]
    assert statuses[:10] == [200] * 10 and 429 in statuses[10:]


async def test_the_client_refuses_a_next_link_to_another_host(reports_emulator: Sandbox) -> None:
    async with ReportsClient(reports_emulator.url, "abcd1234", "s3cret") as client:
        with pytest.raises(ApiUnavailable, match="another host"):
            client._same_origin("https://attacker.example/v2/reports/records?cursor=a&iv=b")
        assert client._same_origin("/v2/reports/records?cursor=a").startswith(reports_emulator.url)


@pytest.mark.parametrize(("raw", "ours"), [
    ("delivered", "delivered"), ("expired", "undeliverable"), ("failed", "undeliverable"),
    ("rejected", "rejected"), ("accepted", "submitted"), ("buffered", "submitted"), ("weird", "weird"),
])  # fmt: skip
def test_record_statuses_map_onto_ours_and_keep_the_raw_value(raw: str, ours: str) -> None:
    record = Record.parse({"message_id": "m1", "status": raw, "date_received": "2026-01-01T00:00:00Z",
                           "date_finalized": "2026-01-01T00:00:05Z", "error_code": "0", "latency": "5000"})  # fmt: skip
    assert record is not None and record.status == ours and json.loads(record.raw)["status"] == raw
    assert record.error_code is None and record.latency_ms == 5000.0
    final = ours in ("delivered", "rejected", "undeliverable")
    assert record.timestamp == ("2026-01-01T00:00:05Z" if final else "2026-01-01T00:00:00Z")


@pytest.mark.parametrize("junk", [None, [], "x", {"status": "delivered"}, {"message_id": "m", "status": None},
                                  {"message_id": "m" * 300, "status": "delivered"}])  # fmt: skip
def test_unusable_records_are_skipped(junk: Any) -> None:
    assert Record.parse(junk) is None
