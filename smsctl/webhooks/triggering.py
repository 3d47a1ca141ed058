"""`smsctl trigger`: one Vonage-shaped, correctly signed webhook to any endpoint — the user's own app,
or this store's running listener — without sending an SMS. Also the HTTP side of `smsctl replay`."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from smsctl.config import Settings
from smsctl.errors import ConfigError, ExitCode, SmsctlError, UsageError
from smsctl.history.interface import Route

if TYPE_CHECKING:
    import aiohttp

DEFAULT_TO = "14155550101"
FAILURE_CODES = {"rejected": "1240", "undeliverable": "1260"}  # the emulator's, with their meanings


class TriggerKind(StrEnum):
    SUBMITTED = "submitted"
    DELIVERED = "delivered"
    REJECTED = "rejected"
    UNDELIVERABLE = "undeliverable"
    INBOUND = "inbound"


TLS_FAILURE = "TLS failure"


class EndpointFailed(SmsctlError):
    """The endpoint did not answer 2xx (or did not answer at all)."""

    exit_code = ExitCode.API_UNAVAILABLE


@dataclass(frozen=True)
class Answer:
    """What an endpoint answered one webhook."""

    url: str
    http_status: int | None  # None: no answer
    ms: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.http_status is not None and 200 <= self.http_status < 300


@dataclass(frozen=True)
class TriggerResult:
    kind: TriggerKind
    message_uuid: str
    answer: Answer

    def to_json(self) -> dict[str, Any]:
        return {"event": str(self.kind), "message_uuid": self.message_uuid, "url": self.answer.url,
                "http_status": self.answer.http_status, "ms": round(self.answer.ms, 1), "error": self.answer.error}  # fmt: skip


def webhook_body(kind: TriggerKind, settings: Settings, *, message_uuid: str, to: str | None, text: str | None,
                 from_: str | None, client_ref: str | None, error_code: str | None) -> bytes:  # fmt: skip
    """The body Vonage would send: a v1 SMS status, or a v1 inbound SMS."""
    from smsctl.webhooks.bodies import Step, inbound_body, status_body

    sender = (settings.sender or "14155550199").lstrip("+")
    if kind is TriggerKind.INBOUND:
        if not text or not from_:
            raise UsageError("`smsctl trigger inbound TEXT --from NUMBER` needs the text and --from")
        recipient = (to or settings.sender or "14155550199").lstrip("+")
        if not recipient.isdigit():  # an alphanumeric sender ID cannot receive an SMS
            raise UsageError(f"an inbound SMS is sent to a phone number, and {recipient!r} is not one",
                             hint="give --to with your Vonage number, e.g. --to +14155550100")  # fmt: skip
        return inbound_body(message_uuid, from_.lstrip("+"), recipient, text)
    sent = {"to": (to or DEFAULT_TO).lstrip("+"), "from": sender, "client_ref": client_ref, "text": ""}
    code = error_code or FAILURE_CODES.get(str(kind))
    return status_body(message_uuid, sent, Step(0, str(kind), code), 1, False)


async def deliver(session: aiohttp.ClientSession, url: str, body: bytes, token: str) -> Answer:
    """POST one signed webhook; the answer and how long it took (never raises for the endpoint's faults)."""
    import aiohttp

    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}", "User-Agent": "smsctl"}
    started = time.perf_counter()
    try:
        async with session.post(url, data=body, headers=headers, allow_redirects=False) as response:
            await response.read()
            return Answer(url, response.status, (time.perf_counter() - started) * 1000)
    except TimeoutError:
        return Answer(url, None, (time.perf_counter() - started) * 1000, "no answer (timed out)")
    except (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError) as exc:
        return Answer(url, None, (time.perf_counter() - started) * 1000, f"{TLS_FAILURE}: {exc}")
    except aiohttp.ClientError as exc:
        return Answer(url, None, (time.perf_counter() - started) * 1000, f"{type(exc).__name__}: {exc}")


def signer(settings: Settings) -> Any:
    """sign(body) with the configured signature secret and the claims Vonage adds."""
    from smsctl.webhooks.signing import sign

    settings.require("VONAGE_SIGNATURE_SECRET", "to sign the webhooks smsctl trigger and replay send")
    secret = settings.signature_secrets()[0]
    return lambda body: sign(body, secret, api_key=settings.api_key, application_id=settings.application_id)


async def listener_url(settings: Settings, route: Route) -> str:
    """The URL of this store's running `smsctl listen` for a route; ConfigError when none runs."""
    from smsctl.webhooks.listening import running_listener
    from smsctl.webhooks.server import INBOUND_PATH, STATUS_PATH

    live = await running_listener(settings)
    if live is None:
        raise ConfigError(
            "no `smsctl listen` is running on this store, and no --url was given",
            hint="start `smsctl listen` in another terminal, or pass --url http://localhost:8080/webhooks/status",
        )
    return live.local_url + (STATUS_PATH if route is Route.STATUS else INBOUND_PATH)


async def trigger(settings: Settings, kind: TriggerKind, *, url: str | None, message_uuid: str | None,
                  to: str | None, text: str | None, from_: str | None, client_ref: str | None,
                  error_code: str | None) -> TriggerResult:  # fmt: skip
    """Build, sign and POST one webhook; the endpoint's answer."""
    import aiohttp

    sign = signer(settings)  # ConfigError without a signature secret, before anything else
    message = message_uuid or str(uuid.uuid4())
    body = webhook_body(kind, settings, message_uuid=message, to=to, text=text, from_=from_,
                        client_ref=client_ref, error_code=error_code)  # fmt: skip
    route = Route.INBOUND if kind is TriggerKind.INBOUND else Route.STATUS
    target = url or await listener_url(settings, route)
    timeout = aiohttp.ClientTimeout(total=settings.http_timeout)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        answer = await deliver(session, target, body, sign(body))
    return TriggerResult(kind, message, answer)


def check(answer: Answer) -> None:
    """EndpointFailed (exit 5) unless the endpoint answered 2xx."""
    if answer.ok:
        return
    what = (
        f"answered {answer.http_status}"
        if answer.http_status is not None
        else (answer.error or "did not answer")
    )
    if answer.error and answer.error.startswith(TLS_FAILURE):
        hint = ("its TLS certificate was refused (self-signed, expired, or for another host): Vonage would "
                "refuse it too. Use a certificate a public CA signed (ngrok's are), or plain http:// locally")  # fmt: skip
    elif answer.http_status is None:
        hint = "nothing answered: is your app running at that URL? (Vonage retries unanswered webhooks)"
    else:
        hint = "a webhook that is not answered 2xx is retried by Vonage"
    raise EndpointFailed(f"{answer.url} {what}", hint=hint)
