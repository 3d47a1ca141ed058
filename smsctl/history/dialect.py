"""SQL that both backends share but for their parameter mark and boolean literals: each backend names
them, and the shared mixins (history/reconciliation.py, history/optouts.py) format their SQL with them."""

from __future__ import annotations

from typing import Any


class DialectSql:
    _mark: str  # "?" (SQLite) or "%s" (PostgreSQL)
    _false: str
    _true: str
    _lock_row: str  # appended to a SELECT of a row the transaction will update: " FOR UPDATE", or "" (SQLite)

    def _run(self, sql: str, params: tuple[object, ...] | list[object]) -> Any:
        """Execute `sql` with `{m}`, `{false}` and `{true}` filled in for this backend; the cursor."""
        return self.conn.execute(sql.format(m=self._mark, false=self._false, true=self._true), params)  # type: ignore[attr-defined]
