"""Baseline webhook servers for the listener benchmark, measured the same way in the same run.

bare:   an aiohttp app that reads the body and answers 200
verify: an aiohttp app that also verifies the HS256 JWT and payload_hash with PyJWT (no storage)
"""

from __future__ import annotations

import hashlib
import hmac
import sys

import jwt
from aiohttp import web


async def bare(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(status=200)


def make_verify(secret: bytes) -> web.RequestHandler:  # type: ignore[type-arg]
    async def verify(request: web.Request) -> web.Response:
        body = await request.read()
        token = request.headers.get("Authorization", "")[7:]
        try:
            claims = jwt.decode(
                token, secret, algorithms=["HS256"], options={"require": ["iat", "payload_hash"]}
            )
        except jwt.PyJWTError:
            return web.Response(status=401)
        if not hmac.compare_digest(str(claims["payload_hash"]), hashlib.sha256(body).hexdigest()):
            return web.Response(status=401)
        return web.Response(status=200)

    return verify


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def main() -> None:
    mode, port, secret = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
    app = web.Application(client_max_size=64 * 1024)
    app.router.add_post("/webhooks/status", bare if mode == "bare" else make_verify(secret))
    app.router.add_get("/healthz", health)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
