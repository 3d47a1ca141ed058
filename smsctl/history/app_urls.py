"""The Application URLs `listen --update-app` keeps (migrations m009 / m005), in SQL both backends
share: each passes its connection's `execute` and its parameter mark."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from smsctl.history.interface import AppUrls

Execute = Callable[..., Any]  # a backend connection's execute(query, params): a cursor


def remember_app_urls(execute: Execute, mark: str, application_id: str, found: AppUrls, ours: AppUrls,
                      now: float) -> AppUrls | None:  # fmt: skip
    """Keep `found` as the application's own URLs unless an smsctl listener set them (one that died,
    say), and record `ours` as a listener's; the application's own URLs as now kept. `mark` is the
    backend's parameter mark."""
    m = mark
    listeners = execute(
        f"SELECT status_url, inbound_url FROM app_listener_urls WHERE application_id = {m}", (application_id,)
    ).fetchall()
    set_by_smsctl = {url for row in listeners for url in row if url}
    if not ({found.status_url, found.inbound_url} & set_by_smsctl) and found != ours:
        execute(
            f"""INSERT INTO app_originals (application_id, status_url, inbound_url, saved_at) VALUES ({m}, {m}, {m}, {m})
                ON CONFLICT (application_id) DO UPDATE SET status_url = excluded.status_url,
                inbound_url = excluded.inbound_url, saved_at = excluded.saved_at""",
            (application_id, found.status_url, found.inbound_url, now),
        )
    if ours.status_url:
        execute(
            f"""INSERT INTO app_listener_urls (application_id, status_url, inbound_url, set_at) VALUES ({m}, {m}, {m}, {m})
                ON CONFLICT (application_id, status_url) DO UPDATE SET inbound_url = excluded.inbound_url,
                set_at = excluded.set_at""",
            (application_id, ours.status_url, ours.inbound_url, now),
        )
    return app_urls(execute, mark, application_id)[0]


def app_urls(execute: Execute, mark: str, application_id: str) -> tuple[AppUrls | None, set[str]]:
    """The application's own URLs as kept (None: never kept), and the status URLs smsctl listeners set."""
    row = execute(
        f"SELECT status_url, inbound_url FROM app_originals WHERE application_id = {mark}", (application_id,)
    ).fetchone()
    listeners = execute(
        f"SELECT status_url FROM app_listener_urls WHERE application_id = {mark}", (application_id,)
    ).fetchall()
    return (AppUrls(row[0], row[1]) if row else None), {r[0] for r in listeners}
