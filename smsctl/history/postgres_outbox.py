"""The PostgreSQL backend's outbox (`listen --forward-to`; claims skip rows another listener has
locked) and the application URLs `--update-app` keeps: mixed into `PgStore` (history/postgres.py), kept
apart so that module stays readable. The SQLite backend's twin is history/sqlite_outbox.py."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from smsctl.history.app_urls import app_urls, remember_app_urls
from smsctl.history.interface import (
    AppUrls,
    Forward,
    ForwardState,
    NewForward,
    Outcome,
    Retried,
    forward_from,
)

Row = tuple[Any, ...]


class PostgresOutbox:
    """Needs what PgStore has: its connection and its three query helpers."""

    @property
    def conn(self) -> psycopg.Connection[Row]:
        raise NotImplementedError

    def _one(self, query: str, params: Sequence[Any] = ()) -> Row | None:
        raise NotImplementedError

    def _all(self, query: str, params: Sequence[Any] = ()) -> list[Row]:
        raise NotImplementedError

    def _dicts(self, query: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        raise NotImplementedError

    # --- forwarding (see the SQLite backend; claims skip rows another listener has locked) --------

    def add_forward(self, forward: NewForward, now: float, retry_for: float) -> None:
        self.conn.execute(
            """INSERT INTO forwards (route, route_key, message_uuid, target, body, content_type, token, state,
                   next_at, expires_at, created_at, blocked)
               VALUES (%s, %s, %s, %s, %s, %s, %s, 'pending', %s, %s, %s, EXISTS (SELECT 1 FROM forwards
                   WHERE state = 'pending' AND route_key = %s AND message_uuid = %s))""",
            (str(forward.route), forward.route_key, forward.message_uuid, forward.target, forward.body,
             forward.content_type, forward.token, now, now + retry_for, now, forward.route_key,
             forward.message_uuid),
        )  # fmt: skip

    def claim_forwards(self, route_key: str, now: float, lease: float, limit: int) -> list[Forward]:
        rows = self._dicts(
            """UPDATE forwards SET next_at = %s, lease_until = %s WHERE id IN (
                   SELECT id FROM forwards WHERE state = 'pending' AND NOT blocked AND route_key = %s
                   AND next_at <= %s ORDER BY next_at LIMIT %s FOR UPDATE SKIP LOCKED)
               RETURNING *""",
            (now + lease, now + lease, route_key, now, limit),
        )
        return sorted((forward_from(r) for r in rows), key=lambda f: f.id)

    def record_forward(self, forward_id: int, outcome: Outcome, now: float) -> None:
        # One statement (the writer pipelines): the outcome, then the next of its message unblocked.
        done = outcome.state is not ForwardState.PENDING
        self.conn.execute(
            """WITH recorded AS (
                   UPDATE forwards SET state = %s, attempts = %s, next_at = %s, lease_until = 0, last_code = %s,
                       last_error = %s, last_ms = %s, done_at = %s,
                       body = CASE WHEN %s = 'delivered' THEN ''::bytea ELSE body END WHERE id = %s
                   RETURNING route_key, message_uuid)
               UPDATE forwards SET blocked = false WHERE %s AND id = (
                   SELECT MIN(f.id) FROM forwards f JOIN recorded r
                   ON f.route_key = r.route_key AND f.message_uuid = r.message_uuid
                   WHERE f.state = 'pending' AND f.id <> %s)""",
            (str(outcome.state), outcome.attempts, outcome.next_at, outcome.code, outcome.error, outcome.ms,
             now if done else None, str(outcome.state), forward_id, done, forward_id),
        )  # fmt: skip

    def forwards(
        self, states: list[ForwardState], limit: int, message_uuid: str | None = None
    ) -> list[Forward]:
        rows = self._dicts(
            "SELECT * FROM forwards WHERE state = ANY(%s) AND (%s::text IS NULL OR message_uuid = %s)"
            " ORDER BY id LIMIT %s",
            ([str(s) for s in states], message_uuid, message_uuid, limit),
        )
        return [forward_from(r) for r in rows]

    def retry_forwards(self, ids: list[int] | None, now: float, retry_for: float) -> Retried:
        chosen = "state != 'delivered' AND (%s::bigint[] IS NULL OR id = ANY(%s::bigint[]))"
        superseded = """state = 'failed' AND EXISTS (SELECT 1 FROM forwards g WHERE g.state = 'delivered'
                            AND g.route_key = forwards.route_key AND g.message_uuid = forwards.message_uuid
                            AND g.id > forwards.id)"""  # fmt: skip
        skipped = self._one(f"SELECT COUNT(*) FROM forwards WHERE {chosen} AND {superseded}", (ids, ids))
        # RETURNING, not rowcount: inside the writer's pipeline a row count is not known yet.
        retried = self._all(
            f"""UPDATE forwards SET state = 'pending', attempts = 0, next_at = %s, expires_at = %s,
                    lease_until = 0, done_at = NULL WHERE {chosen} AND NOT ({superseded}) RETURNING id""",
            (now, now + retry_for, ids, ids),
        )
        self.conn.execute(
            """UPDATE forwards SET blocked = EXISTS (SELECT 1 FROM forwards g WHERE g.state = 'pending'
                   AND g.route_key = forwards.route_key AND g.message_uuid = forwards.message_uuid
                   AND g.id < forwards.id) WHERE state = 'pending'"""
        )
        return Retried(len(retried), int(skipped[0]) if skipped else 0)

    def next_forward_at(self, route_key: str) -> float | None:
        row = self._one(
            "SELECT MIN(next_at) FROM forwards WHERE state = 'pending' AND NOT blocked AND route_key = %s",
            (route_key,),
        )
        return float(row[0]) if row and row[0] is not None else None

    # --- `listen --update-app` ------------------------------------------------------------------

    def remember_app_urls(
        self, application_id: str, found: AppUrls, ours: AppUrls, now: float
    ) -> AppUrls | None:
        return remember_app_urls(self.conn.execute, "%s", application_id, found, ours, now)

    def app_urls(self, application_id: str) -> tuple[AppUrls | None, set[str]]:
        return app_urls(self.conn.execute, "%s", application_id)
