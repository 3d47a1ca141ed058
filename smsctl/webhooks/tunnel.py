"""The tunnel check: at start-up, `smsctl listen` sends one probe through its public URL to itself.

A free ngrok tunnel that points at another port, an old URL in BASE_URL, a TLS proxy with the wrong
certificate: each makes Vonage's webhooks vanish silently. The probe finds out in a second and says
which it is. It carries a random nonce in a header; the listener answers its own nonce without
storing or forwarding anything, and answers any other smsctl's probe 409, so a probe is never stored
by a listener it reaches by mistake.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

PROBE_HEADER = "X-Smsctl-Probe"
TIMEOUT = 5.0


def new_nonce() -> str:
    return secrets.token_urlsafe(16)


@dataclass(frozen=True)
class TunnelCheck:
    """What the probe found: reachable (with the round trip), or why not."""

    public_url: str
    reachable: bool
    ms: float | None
    diagnosis: str  # "reachable", or what is wrong and what to do

    def to_json(self) -> dict[str, Any]:
        return {"public_url": self.public_url, "reachable": self.reachable,
                "ms": round(self.ms, 1) if self.ms is not None else None, "diagnosis": self.diagnosis}  # fmt: skip


def diagnose(status: int, content_type: str, body: bytes, nonce: str) -> str | None:
    """None when the answer is this listener's; else what answered instead."""
    if status == 200 and nonce.encode() in body:
        return None
    if status == 409 and b"smsctl probe" in body:
        return "the tunnel reaches another smsctl listen (a different port?): point it at this one's port"
    if "html" in content_type.lower() or body.lstrip()[:1] == b"<":
        return (f"the tunnel reaches another program (an HTML page, HTTP {status}): is the tunnel pointed at this "
                "port, and is it still running?")  # fmt: skip
    if status == 404:
        return "the tunnel reaches another program (404): is the tunnel pointed at this port?"
    return f"the tunnel answered HTTP {status}, not this listener: check what it forwards to"


async def check_tunnel(public_url: str, path: str, nonce: str) -> TunnelCheck:
    """POST the probe through the public URL; reachable or a diagnosis (never raises)."""
    import aiohttp

    from smsctl.codec import read_at_most

    url = public_url.rstrip("/") + path
    started = time.perf_counter()
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as session,
            session.post(
                url,
                data=b"{}",
                headers={PROBE_HEADER: nonce, "Content-Type": "application/json"},
                allow_redirects=False,
            ) as response,  # fmt: skip
        ):
            body = await read_at_most(response.content, 4096)
            ms = (time.perf_counter() - started) * 1000
            problem = diagnose(response.status, response.headers.get("Content-Type", ""), body, nonce)
    except aiohttp.ClientConnectorCertificateError as exc:
        return TunnelCheck(
            public_url,
            False,
            None,
            f"TLS failure: the certificate is not valid for it ({exc.certificate_error})",
        )
    except aiohttp.ClientSSLError as exc:
        return TunnelCheck(public_url, False, None, f"TLS failure: {exc}")
    except aiohttp.ClientConnectorError as exc:
        reason = exc.os_error.strerror or str(exc)
        return TunnelCheck(public_url, False, None, f"cannot connect ({reason}): is the tunnel running?")
    except TimeoutError:
        return TunnelCheck(public_url, False, None, f"no answer within {TIMEOUT:g} s: is the tunnel running?")
    except aiohttp.ClientError as exc:
        return TunnelCheck(public_url, False, None, f"{type(exc).__name__}: {exc}")
    if problem is not None:
        return TunnelCheck(public_url, False, ms, problem)
    return TunnelCheck(public_url, True, ms, "reachable")
