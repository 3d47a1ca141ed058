"""A local emulator of the Messages API (SMS): real validation and errors, then signed status webhooks.

Vonage's own sandbox has no SMS. This one accepts `POST /v1/messages` as the real API does and
then POSTs `submitted` and a final status to the message's `webhook_url` (or `--status-url`),
signed exactly as Vonage signs them. Magic recipient numbers choose what happens.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import math
import random
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from importlib.resources import files
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import aiohttp
import jwt
from aiohttp import web

from smsctl.config import Settings
from smsctl.encoding import text_cost
from smsctl.errors import ConfigError
from smsctl.messages.numbers import ALPHANUMERIC_SENDER, NUMERIC_SENDER
from smsctl.sandbox.application import absolute_http_url, initial_application, invalid_application
from smsctl.sandbox.reports import Ledger, ReportsApi, ReportsSettings
from smsctl.sandbox.reports import iso as iso_time
from smsctl.sandbox.throttle import SlidingWindow
from smsctl.webhooks.server import start_serving
from smsctl.webhooks.signing import sign

if TYPE_CHECKING:
    import ssl

    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from smsctl.webhooks.bodies import Step, inbound_body, status_body

HANG_SECONDS = 60.0
_DIGITS = re.compile(r"^[1-9]\d{6,14}$")


@dataclass(frozen=True)
class Scenario:
    """What the emulator does for a recipient."""

    name: str
    meaning: str
    steps: tuple[Step, ...] = ()
    http_status: int | None = None  # answer with this error instead of 202
    segments: int | None = None  # force a multi-segment aggregate with per-segment results
    lost: bool = False  # the statuses happen (the Reports API has them), their webhooks are never sent


_DELIVERED = (Step(0.2, "submitted"), Step(1.0, "delivered"))
SCENARIOS: dict[str, Scenario] = {
    "14155550100": Scenario("delivered", "submitted, then delivered after ~1 s (any unlisted number)", _DELIVERED),
    "14155550110": Scenario("rejected", "submitted, then rejected with 1240 (Illegal Number: opted out)",
                            (Step(0.2, "submitted"), Step(1.0, "rejected", "1240"))),
    "14155550120": Scenario("undeliverable", "submitted, then undeliverable with 1260",
                            (Step(0.2, "submitted"), Step(1.0, "undeliverable", "1260"))),
    "14155550130": Scenario("slow", "submitted, then delivered after 30 s",
                            (Step(0.2, "submitted"), Step(30.0, "delivered"))),
    "14155550140": Scenario("silent", "submitted, then no final status ever", (Step(0.2, "submitted"),)),
    "14155550150": Scenario("duplicate", "delivered twice: the same webhook re-delivered",
                            (Step(0.2, "submitted"), Step(1.0, "delivered", copies=2))),
    "14155550160": Scenario("out-of-order", "delivered arrives before submitted",
                            (Step(0.5, "delivered"), Step(1.0, "submitted"))),
    "14155550170": Scenario("multipart", "a 3-segment message, one aggregated delivered status",
                            _DELIVERED, segments=3),
    "14155550180": Scenario("unsigned", "first callback unsigned (answer 5xx), then retried signed",
                            (Step(0.2, "submitted", unsigned_first=True), Step(1.0, "delivered"))),
    "14155550190": Scenario("server-error", "the API answers 500 Internal error", http_status=500),
    "14155550191": Scenario("low-balance", "the API answers 402 Low balance", http_status=402),
    "14155550192": Scenario("no-answer", f"the API never answers (hangs {HANG_SECONDS:.0f} s)", http_status=0),
    "14155550195": Scenario("webhook-lost", "submitted, then delivered, but no status webhook ever arrives "
                            "(the Reports API knows: `smsctl reconcile`)", _DELIVERED, lost=True),
}  # fmt: skip
DEFAULT_SCENARIO = SCENARIOS["14155550100"]
OPTED_OUT = Scenario("opted-out", "a number that texted STOP: submitted, then rejected with 1240",
                     (Step(0.2, "submitted"), Step(1.0, "rejected", "1240")))  # fmt: skip


ENCODING_TYPES = ("text", "unicode", "auto")
WEBHOOK_VERSIONS = ("v0.1", "v1")


def _invalid_options(body: dict[str, Any]) -> list[dict[str, str]]:
    """`sms.encoding_type`, `webhook_version` and `webhook_url`, checked as the spec defines them."""
    invalid = []
    sms = body.get("sms", {})
    if not isinstance(sms, dict) or sms.get("encoding_type", "auto") not in ENCODING_TYPES:
        invalid.append({"name": "sms.encoding_type", "reason": "must be one of text, unicode, auto"})
    if body.get("webhook_version", "v1") not in WEBHOOK_VERSIONS:
        invalid.append({"name": "webhook_version", "reason": "must be one of v0.1, v1"})
    if "webhook_url" in body and not absolute_http_url(body["webhook_url"]):
        invalid.append({"name": "webhook_url", "reason": "must be an absolute http or https URL"})
    return invalid


def _valid_sender(sender: str) -> bool:
    """The sender rules smsctl checks before sending, so the two always agree."""
    return bool(NUMERIC_SENDER.fullmatch(sender) or ALPHANUMERIC_SENDER.fullmatch(sender))


def retry_delays(time_scale: float) -> list[float]:
    """Vonage's webhook retry schedule: 5 s doubling to 15 min, for 24 h (scaled)."""
    delays, delay, total = [], 5.0, 0.0
    while total + delay <= 24 * 3600:
        delays.append(delay * time_scale)
        total += delay
        delay = min(delay * 2, 900.0)
    return delays


@dataclass(frozen=True)
class SandboxConfig:
    """Credentials the emulator accepts and the secret it signs webhooks with."""

    signature_secret: str
    application_id: str | None = None
    public_key: RSAPublicKey | None = None
    api_key: str | None = None
    api_secret: str | None = None
    status_url: str | None = None
    sender: str | None = None  # the number inbound SMS are sent to (VONAGE_NUMBER)
    time_scale: float = 1.0
    rate: float | None = 30.0  # requests per second; None = unlimited
    drop_seed: int | None = None  # a fixed seed makes the dropped messages repeatable (tests)
    drop_webhooks: float = 0.0  # percent of messages whose status webhooks are never sent (`--drop-webhooks`)
    reports: ReportsSettings = field(
        default_factory=ReportsSettings
    )  # the Reports API's page size, rate, faults


@dataclass
class Received:
    """One request to POST /v1/messages, as the emulator saw it."""

    at: float
    status: int
    auth: str | None
    body: dict[str, Any] | None
    message_uuid: str | None = None


class EventKind(StrEnum):
    REQUEST = "request"  # a POST /v1/messages was answered
    WEBHOOK = "webhook"  # one delivery attempt of a status webhook
    NO_STATUS_URL = "no_status_url"  # a message was accepted but has nowhere to report to
    DROPPED = "dropped"  # a message's status webhooks will never be sent (webhook-lost, --drop-webhooks)


@dataclass(frozen=True)
class SandboxEvent:
    """What the emulator did, for its console output and for tests."""

    kind: EventKind
    message_uuid: str | None
    status: int | str | None = None  # the HTTP status answered, or the webhook's message status
    to: str | None = None
    attempt: int | None = None
    response: int | None = None  # what the webhook's receiver answered; None: no answer
    signed: bool | None = None
    url: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None or k in ("message_uuid", "response")}


@dataclass
class SandboxStats:
    requests: list[Received] = field(default_factory=list)
    webhooks: list[SandboxEvent] = field(default_factory=list)


def _load_errors() -> dict[str, dict[str, str]]:
    data = json.loads(files("smsctl").joinpath("data/api_errors.json").read_text())
    return {name: entry["body"] for name, entry in data["errors"].items()}


class Sandbox:
    """The emulator; `async with Sandbox(config) as sandbox:` serves on `sandbox.url`."""

    def __init__(
        self,
        config: SandboxConfig,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        on_event: Callable[[SandboxEvent], None] | None = None,
    ) -> None:
        self.config = config
        self.host, self.port, self.ssl_context = host, port, ssl_context
        self.on_event = on_event or (lambda event: None)
        self.stats = SandboxStats()
        self.url = ""
        self._errors = _load_errors()
        self._window = SlidingWindow(config.rate)
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._stop = asyncio.Event()
        self._server: asyncio.Task[None] | None = None
        self.application = initial_application(config)
        self.ledger = Ledger()
        self.opted_out: set[tuple[str, str]] = set()  # (number, our sender or "*"): after STOP, until START
        self.reports = ReportsApi(self.ledger, config.api_key, self._authenticate, config.reports)
        self._dropper = random.Random(config.drop_seed)
        # A client reuses one application JWT for many requests (ours for ~14 minutes): verify each token's
        # RSA signature once, then only its expiry (an RSA verification cost ~0.3 ms a request).
        self._verified_tokens: dict[str, float] = {}

    async def __aenter__(self) -> Sandbox:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_post("/v1/messages", self._handle)
        app.router.add_get("/v2/applications/{id}", self._get_application)
        app.router.add_put("/v2/applications/{id}", self._put_application)
        app.router.add_post("/_sandbox/inbound", self._inbound)
        self.reports.add_to(app)
        try:
            self.url, self._server = await start_serving(
                app, self.host, self.port, self._stop, ssl_context=self.ssl_context, shutdown_timeout=1.0
            )
        except BaseException:  # the port is taken, say: nothing may leak (the webhook client session)
            await self._session.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._stop.set()
        if self._server is not None:
            await self._server
        if self._session is not None:
            await self._session.close()

    async def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until every scheduled webhook has been delivered or given up."""
        async with asyncio.timeout(timeout):
            while self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # --- the API ---------------------------------------------------------------------------------

    def _problem(
        self,
        status: int,
        name: str,
        headers: dict[str, str] | None = None,
        invalid: list[dict[str, str]] | None = None,
        detail: str | None = None,
    ) -> web.Response:
        body: dict[str, Any] = dict(self._errors[name], instance=uuid.uuid4().hex)
        if detail:
            body["detail"] = detail
        if invalid:
            body["invalid_parameters"] = invalid
        content_type = "application/json" if status == 422 else "application/problem+json"
        return web.Response(status=status, text=json.dumps(body), content_type=content_type,
                            headers={"X-Request-Id": str(uuid.uuid4()), **(headers or {})})  # fmt: skip

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        auth = self._authenticate(request.headers.get("Authorization", ""))
        received = Received(time.time(), 0, auth, None)
        self.stats.requests.append(received)
        response, uuid_ = await self._respond(auth, raw, received)
        received.status, received.message_uuid = response.status, uuid_
        to = (received.body or {}).get("to")
        self.on_event(
            SandboxEvent(EventKind.REQUEST, uuid_, response.status, to if isinstance(to, str) else None)
        )
        return response

    async def _respond(
        self, auth: str | None, raw: bytes, received: Received
    ) -> tuple[web.Response, str | None]:
        if auth is None:
            return self._problem(401, "unauthorized"), None
        if throttled := self._throttle():
            return throttled, None
        try:
            body = json.loads(raw)
        except ValueError as exc:
            return self._problem(422, "invalid_json", detail=str(exc)), None
        received.body = body if isinstance(body, dict) else None
        if invalid := self._validate(body):
            return invalid, None
        scenario = SCENARIOS.get(body["to"], DEFAULT_SCENARIO)
        if {(body["to"], body["from"]), (body["to"], "*")} & self.opted_out:
            scenario = OPTED_OUT  # as the network does after a STOP: accepted, then rejected with 1240
        if scenario.http_status == 0:
            await asyncio.sleep(HANG_SECONDS)
        if scenario.http_status == 500:
            return self._problem(500, "internal"), None
        if scenario.http_status == 402:
            return self._problem(402, "low_balance"), None
        message_uuid, accepted_at = str(uuid.uuid4()), time.time()
        scale = self.config.time_scale
        self.ledger.accepted(message_uuid, body, scenario.segments or text_cost(body["text"]).segments, accepted_at,
                             [(accepted_at + s.delay * scale, s.status, s.error_code) for s in scenario.steps])  # fmt: skip
        self._schedule(message_uuid, body, scenario, accepted_at)
        return web.json_response({"message_uuid": message_uuid}, status=202,
                                 headers={"X-Request-Id": str(uuid.uuid4())}), message_uuid  # fmt: skip

    def _authenticate(self, header: str) -> str | None:
        scheme, _, credentials = header.partition(" ")
        if scheme == "Bearer" and self.config.public_key is not None:
            expires = self._verified_tokens.get(credentials)
            if expires is not None and time.time() < expires:
                return "jwt"
            try:
                claims = jwt.decode(credentials, self.config.public_key, algorithms=["RS256"],
                                    options={"require": ["iat", "jti", "application_id"]})  # fmt: skip
            except jwt.PyJWTError:
                return None
            if claims["application_id"] != self.config.application_id:
                return None
            if isinstance(claims.get("exp"), int):  # a token without an expiry is checked every time
                if len(self._verified_tokens) >= 1024:
                    self._verified_tokens.clear()
                self._verified_tokens[credentials] = claims["exp"]
            return "jwt"
        if scheme == "Basic" and self.config.api_key and self.config.api_secret:
            try:
                given = base64.b64decode(credentials, validate=True)
            except ValueError:
                return None
            expected = f"{self.config.api_key}:{self.config.api_secret}".encode()
            return "basic" if hmac.compare_digest(given, expected) else None
        return None

    def _throttle(self) -> web.Response | None:
        reset = self._window.take()
        if reset is None:
            return None
        return self._problem(429, "throttled", headers={
            "Retry-After": str(max(1, math.ceil(reset))),
            "X-RateLimit-Limit": str(int(self.config.rate or 0)),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(int(time.time() + reset)),
        })  # fmt: skip

    def _validate(self, body: Any) -> web.Response | None:
        if not isinstance(body, dict):
            return self._problem(422, "invalid_json")
        if body.get("channel") != "sms":
            return self._problem(422, "unsupported_channel")
        if body.get("message_type") != "text":
            return self._problem(422, "invalid_message_type")
        if not isinstance(body.get("to"), str) or not _DIGITS.match(body["to"]):
            return self._problem(422, "invalid_recipient")
        if not isinstance(body.get("from"), str) or not _valid_sender(body["from"]):
            return self._problem(422, "invalid_sender")
        if not isinstance(body.get("client_ref", ""), str) or len(body.get("client_ref", "")) > 100:
            return self._problem(422, "invalid_client_ref")
        invalid = []
        text = body.get("text")
        if not isinstance(text, str) or not 1 <= len(text) <= 3200:
            invalid.append({"name": "text", "reason": "must be a string of 1 to 3200 characters"})
        ttl = body.get("ttl", 20)
        if not isinstance(ttl, int) or isinstance(ttl, bool) or not 20 <= ttl <= 604800:
            invalid.append({"name": "ttl", "reason": "must be an integer from 20 to 604800"})
        invalid.extend(_invalid_options(body))
        return self._problem(422, "invalid_params", invalid=invalid) if invalid else None

    # --- the Application API (what `listen --update-app` uses) ------------------------------------

    def _app_problem(
        self, status: int, title: str, detail: str, invalid: list[dict[str, str]] | None = None
    ) -> web.Response:
        body: dict[str, Any] = {"type": f"https://developer.nexmo.com/api-errors/application#{status}", "title": title,
                                "detail": detail, "instance": uuid.uuid4().hex}  # fmt: skip
        if invalid:
            body["invalid_parameters"] = invalid
        return web.Response(status=status, text=json.dumps(body), content_type="application/problem+json")

    def _application_request(self, request: web.Request) -> web.Response | None:
        """401 without the account's Basic credentials (the application JWT is not accepted here), 404
        for another application's ID."""
        if self._authenticate(request.headers.get("Authorization", "")) != "basic":
            return self._app_problem(401, "Unauthorized", "You did not provide correct credentials.")
        if request.match_info["id"] != self.application["id"]:
            return self._app_problem(404, "Not Found", f"Application {request.match_info['id']} not found")
        return None

    async def _get_application(self, request: web.Request) -> web.Response:
        refused = self._application_request(request)
        return refused or web.json_response(self.application)

    async def _put_application(self, request: web.Request) -> web.Response:
        if refused := self._application_request(request):
            return refused
        if request.content_type != "application/json":
            return self._app_problem(415, "Unsupported Media Type", "send application/json")
        try:
            body = json.loads(await request.read())
        except ValueError:
            return self._app_problem(400, "Bad Request", "The request body is not JSON")
        invalid = invalid_application(body)
        if invalid:
            return self._app_problem(
                400, "Bad Request", "The request failed due to validation errors", invalid
            )
        self.application = {**body, "id": self.application["id"], "_links": self.application["_links"]}
        return web.json_response(self.application)

    def _messages_webhook(self, name: str) -> str | None:
        hooks = self.application.get("capabilities", {}).get("messages", {}).get("webhooks", {})
        value = hooks.get(name)
        return str(value["address"]) if isinstance(value, dict) and value.get("address") else None

    async def _inbound(self, request: web.Request) -> web.Response:
        """POST /_sandbox/inbound {"from", "to", "text"}: an SMS to your number, delivered as a signed
        inbound webhook to the application's inbound URL."""
        try:
            body = json.loads(await request.read())
            sender, text = str(body["from"]), str(body["text"])
        except (ValueError, KeyError, TypeError):
            return self._app_problem(
                400, "Bad Request", 'send {"from": "+14155550123", "text": "…", "to": optional}'
            )
        url = self._messages_webhook("inbound_url")
        if url is None:
            return self._app_problem(409, "Conflict", "the application has no Messages inbound URL: set one "
                                     "(smsctl listen --update-app) first")  # fmt: skip
        message_uuid = str(uuid.uuid4())
        ours = str(body.get("to") or self.config.sender or "14155550199")
        self._opt(sender.lstrip("+"), ours.lstrip("+"), text)
        payload = inbound_body(message_uuid, sender, ours, text)
        task = asyncio.create_task(self._deliver(url, payload, message_uuid, Step(0, "inbound")))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return web.json_response({"message_uuid": message_uuid, "inbound_url": url}, status=202)

    def _opt(self, number: str, ours: str, text: str) -> None:
        """STOP (or STOPALL) makes later sends to `number` rejected with 1240, START undoes it: the network's
        own list, which smsctl's ledger mirrors (history/optouts.py)."""
        from smsctl.history.events import OptKeyword, opt_keyword

        keyword = opt_keyword(text)
        if keyword is OptKeyword.START:
            self.opted_out -= {(number, ours), (number, "*")}
        elif keyword is not None:
            self.opted_out.add((number, "*" if keyword is OptKeyword.STOP_ALL else ours))

    # --- the webhooks ------------------------------------------------------------------------------

    def _schedule(
        self, message_uuid: str, body: dict[str, Any], scenario: Scenario, accepted_at: float
    ) -> None:
        """Deliver the message's statuses as webhooks, unless they are lost (its Reports API record moves
        on its own clock either way: sandbox/reports.Ledger). A message's own webhook_url wins; else the
        application's status URL (as Vonage does)."""
        url = body.get("webhook_url") or self._messages_webhook("status_url") or self.config.status_url
        if not url:
            self.on_event(SandboxEvent(EventKind.NO_STATUS_URL, message_uuid))
        elif scenario.lost or self._dropper.random() * 100 < self.config.drop_webhooks:
            self.on_event(SandboxEvent(EventKind.DROPPED, message_uuid, to=body.get("to")))
            return
        if not url:
            return
        task = asyncio.create_task(self._run_scenario(url, message_uuid, body, scenario, accepted_at))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_scenario(
        self, url: str, message_uuid: str, sent: dict[str, Any], scenario: Scenario, accepted_wall: float
    ) -> None:
        """The webhooks go out in order, each retried as Vonage retries: a receiver that is down delays
        the webhooks, never the statuses. A step's webhook carries the time its status happened."""
        accepted_at = time.monotonic() - (time.time() - accepted_wall)
        segments = scenario.segments or text_cost(sent["text"]).segments
        for step in scenario.steps:
            await asyncio.sleep(
                max(0.0, accepted_at + step.delay * self.config.time_scale - time.monotonic())
            )
            timestamp = iso_time(accepted_wall + step.delay * self.config.time_scale)
            payload = status_body(
                message_uuid, sent, step, segments, scenario.segments is not None, timestamp
            )
            for _ in range(step.copies):
                await self._deliver(url, payload, message_uuid, step)

    async def _deliver(self, url: str, body: bytes, message_uuid: str, step: Step) -> None:
        assert self._session is not None
        for attempt, backoff in enumerate([*retry_delays(self.config.time_scale), None], start=1):
            headers = {"Content-Type": "application/json", "User-Agent": "smsctl-sandbox"}
            if not (step.unsigned_first and attempt == 1):
                headers["Authorization"] = "Bearer " + sign(
                    body, self.config.signature_secret, api_key=self.config.api_key,
                    application_id=self.config.application_id,
                )  # fmt: skip
            try:
                async with self._session.post(url, data=body, headers=headers) as response:
                    code: int | None = response.status
            except (aiohttp.ClientError, TimeoutError):
                code = None
            event = SandboxEvent(EventKind.WEBHOOK, message_uuid, step.status, attempt=attempt, response=code,
                                 signed="Authorization" in headers, url=url)  # fmt: skip
            self.stats.webhooks.append(event)
            self.on_event(event)
            retryable = code is None or code == 429 or code >= 500
            if (code is not None and 200 <= code < 300) or not retryable or backoff is None:
                return
            await asyncio.sleep(backoff)


def config_from_settings(settings: Settings, *, status_url: str | None, time_scale: float, rate: float | None,
                         drop_webhooks: float = 0.0, reports_rate: float | None = 10.0) -> SandboxConfig:  # fmt: skip
    """The emulator accepts the same credentials smsctl sends with, and signs with the same secret."""
    from smsctl.config import load_private_key

    secret = settings.require("VONAGE_SIGNATURE_SECRET", "to sign the emulator's status webhooks")
    application_id = settings.application_id
    key = (
        load_private_key(settings) if application_id else None
    )  # a key means nothing without its application
    if key is None and not (settings.api_key and settings.api_secret):
        raise ConfigError(
            "the emulator needs credentials to accept: an application (VONAGE_APPLICATION_ID + "
            "VONAGE_PRIVATE_KEY_PATH) or VONAGE_API_KEY + VONAGE_API_SECRET",
            hint="any values work locally, e.g. VONAGE_API_KEY=local VONAGE_API_SECRET=local",
        )
    return SandboxConfig(
        signature_secret=secret,
        application_id=application_id,
        public_key=key.public_key() if key is not None and application_id else None,
        api_key=settings.api_key,
        api_secret=settings.api_secret,
        status_url=status_url,
        sender=(settings.sender or "").lstrip("+") or None,
        time_scale=time_scale,
        rate=rate or None,
        drop_webhooks=drop_webhooks,
        reports=ReportsSettings(rate=reports_rate),
    )


async def run_sandbox(
    config: SandboxConfig,
    *,
    host: str,
    port: int,
    on_ready: Callable[[str, str | None], None],
    on_event: Callable[[SandboxEvent], None],
    stop: asyncio.Event,
    tls_dir: Path | None = None,
) -> SandboxStats:
    """`smsctl sandbox`: serve until `stop` is set (SIGINT/SIGTERM); with `tls_dir`, over HTTPS."""
    context, cert = None, None
    if tls_dir is not None:
        from smsctl.sandbox.tls import self_signed, server_context

        cert, key = self_signed(tls_dir)
        context = server_context(cert, key)
    async with Sandbox(config, host=host, port=port, on_event=on_event, ssl_context=context) as sandbox:
        on_ready(sandbox.url, str(cert) if cert else None)
        await stop.wait()
    return sandbox.stats
