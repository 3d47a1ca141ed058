"""A bulk batch's rows, the store side for both backends: what a run reads a block of lines at a time,
and the conditional write that keeps two runs of one batch from both sending a row."""

from __future__ import annotations

import time

from smsctl.history.dialect import DialectSql
from smsctl.history.interface import LocalState


class BatchRowsSql(DialectSql):
    """The mixin (history/sqlite.py `Store`, history/postgres.py `PgStore`)."""

    def rows_in_batch(self, batch_id: str, first: int, last: int) -> dict[int, tuple[LocalState, str | None]]:
        """The recorded rows from `first` to `last` of a batch: each one's state and message UUID."""
        found = self._run(
            "SELECT batch_row, state, message_uuid FROM messages WHERE batch_id = {m} AND batch_row BETWEEN {m} AND {m}",
            (batch_id, first, last),
        )
        return {int(row): (LocalState(state), uuid) for row, state, uuid in found}

    def claim(
        self, local_id: int, state: LocalState, error: str | None, seen: tuple[LocalState, float]
    ) -> float | None:
        """Move a recorded send to `state` only if it is still as this run last saw it (`seen`: its state
        and updated_at), so two runs of one batch never both send a row nor undo each other's writes;
        the new updated_at, or None when another run changed the row since."""
        now = time.time()
        done = self._run(
            "UPDATE messages SET state = {m}, error = {m}, updated_at = {m}"
            " WHERE id = {m} AND state = {m} AND updated_at = {m} RETURNING id",
            (str(state), error, now, local_id, str(seen[0]), seen[1]),
        ).fetchall()  # to the end: SQLite finishes a write statement only when it is stepped out
        return now if done else None
