"""Delivery statistics computed in the database (`smsctl stats`, `smsctl report`, the inspector's charts).

One SQL statement per call, on both backends: a materialised per-message table of facts (one row per
message `export` would write: smsctl's sends, then messages seen only through webhooks; each message's
events come folded on its status row, kept so by a trigger as they are stored), then every figure as
rows of one UNION ALL, so the store is read once and nothing but the answers reaches Python.

Latency runs from submission to the final status. Both ends come from Vonage's own timestamps when the
message has a `submitted` and a final event with readable ones (basis `vonage`); otherwise from our
clock: when smsctl sent it (or first heard of it) to when the final status was received (`received`).
Percentiles are nearest-rank: the value at rank ceil(p·n) of the sorted latencies, in integer
arithmetic, so any independent computation over `smsctl export` gets the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from smsctl.history.dialect import DialectSql

PERCENTILES = (50, 90, 99)
# Latency histogram buckets (upper bounds in seconds) and their labels.
BUCKETS = ((1, "<1s"), (2, "1-2s"), (5, "2-5s"), (10, "5-10s"), (30, "10-30s"), (60, "30-60s"), (300, "1-5m"))
SLOWEST = "5m+"


class GroupBy(StrEnum):
    COUNTRY = "country"
    NETWORK = "network"
    SENDER = "sender"
    ERROR = "error"
    HOUR = "hour"
    DAY = "day"


@dataclass(frozen=True)
class StatsQuery:
    since: float | None = None  # epoch seconds: messages sent (or first seen) from then on
    batch: str | None = None
    by: GroupBy | None = None
    now: float = 0.0  # for `stale`: injected, so a test decides what time it is
    stale_after: float = 900.0


@dataclass(frozen=True)
class Latency:
    count: int
    p50: float | None
    p90: float | None
    p99: float | None
    max: float | None
    vonage: int  # latencies from Vonage's timestamps
    received: int  # latencies from our clock (a timestamp missing or unreadable)


@dataclass(frozen=True)
class Group:
    key: str
    messages: int
    sent: int
    delivered: int
    rejected: int
    undeliverable: int
    final: int
    cost: float


@dataclass
class StatsFigures:
    """What the store says, before any rendering."""

    statuses: dict[str, int] = field(default_factory=dict)  # current status, or the local state if never sent
    sent: int = 0  # messages that reached Vonage (have a message UUID)
    stale: int = 0
    latency: Latency = Latency(0, None, None, None, None, 0, 0)
    histogram: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    cost: dict[str, tuple[float, int]] = field(default_factory=dict)  # currency: (sum, messages priced)
    segments: int = 0
    groups: list[Group] = field(default_factory=list)
    series: list[tuple[str, int, int, int]] = field(
        default_factory=list
    )  # (day or hour, sent, final, delivered)
    series_unit: str = "day"


class Stats(DialectSql):
    """The mixin (history/sqlite.py `Store`, history/postgres.py `PgStore`). Backends name:"""

    _events_by: str  # the column events are grouped by, and the message_status column it matches
    _status_by: str
    _greatest: str  # GREATEST (PostgreSQL) or MAX (SQLite's scalar form)

    def _price_number(self, column: str) -> str:
        raise NotImplementedError

    def _latency_piece(self, picks: str) -> str:
        """The `lat` row: count, the percentiles by nearest rank over `ranked`, max, and the basis counts."""
        return (f"SELECT 'lat', NULL, NULL, NULL, MAX(ranks.n), {picks}, MAX(latency), SUM(CASE WHEN basis = 'vonage'"
                " THEN 1 ELSE 0 END), SUM(CASE WHEN basis = 'received' THEN 1 ELSE 0 END) FROM ranked, ranks")  # fmt: skip

    def _milliseconds(self, seconds: str) -> str:
        """Seconds rounded to the millisecond (what any other computation can agree on); round() to a whole
        number is the one form both backends share for floating point."""
        return f"round(({seconds}) * 1000) / 1000.0"

    def _bucket(self, column: str, unit: str) -> str:
        """SQL for an epoch column as the number of its UTC hour or day since the epoch, as text (`bucket_label`
        names it). Formatting a date for every row (to_char, strftime) cost a fifth of the statement; this
        formats one per bucket, in Python."""
        raise NotImplementedError

    def _network_of(self) -> str:
        """SQL for the network of an event: the Reports API's name, else the webhook's network code."""
        raise NotImplementedError

    def change_marker(self) -> tuple[int, int]:
        """(newest event id, newest send id): two primary-key lookups; the inspector polls it to go live."""
        row = self._run("SELECT (SELECT COALESCE(MAX(id), 0) FROM events), (SELECT COALESCE(MAX(id), 0) FROM messages)",
                        ()).fetchone()  # fmt: skip
        return int(row[0]), int(row[1])

    def delivery_stats(self, query: StatsQuery) -> StatsFigures:
        sql, params = self._stats_sql(query)
        figures = StatsFigures()
        for kind, key, currency, code, *values in (tuple(r) for r in self._run(sql, params).fetchall()):
            if kind == "status":
                _count_status(figures, str(key), currency, code, values)
            elif kind == "group" and query.by in (GroupBy.HOUR, GroupBy.DAY):
                _collect(figures, kind, bucket_label(key, query.by.value), values)
            else:
                _collect(figures, kind, key, values)
        figures.series.sort()
        if len(figures.series) > 48:  # more than two days: drawn by the day
            figures.series, figures.series_unit = _by_day(figures.series), "day"
        else:
            figures.series_unit = "hour"
        return figures

    def _facts(self, query: StatsQuery, with_network: bool) -> tuple[str, list[object]]:
        """The WITH clause: `facts`, one row per message `export` writes (each message with a status row,
        its events as folded there; then smsctl's sends without one), and `timed`, the facts with each
        message's latency, materialised once for every figure."""
        where: list[str] = ["TRUE"]
        params: list[object] = []
        if query.since is not None:
            where.append("COALESCE(m.created_at, s.first_seen) >= {m}")
            params.append(query.since)
        if query.batch is not None:
            where.append("m.batch_id = {m}")  # a batch is smsctl's: webhook-only messages have none
            params.append(query.batch)
        # The events come folded on each status row (schema.FOLDED_COLUMNS): one row per message is read.
        # Only `--by network` still looks at the events (the network is in the bodies).
        network = (f"(SELECT MAX({self._network_of()}) FROM events WHERE events.{self._events_by} = s.{self._status_by})"
                   if with_network else "NULL")  # fmt: skip
        # One full join gives export's rows: each send with its status (a status row per message UUID; two
        # sends that got one UUID are two rows), each send without one, each message seen only by webhook.
        facts = f"""WITH facts AS (
            SELECT COALESCE(s.message_uuid, m.message_uuid) AS uuid, COALESCE(m.created_at, s.first_seen) AS at,
                   COALESCE(s.status, CASE WHEN m.message_uuid IS NULL THEN m.state ELSE 'accepted' END) AS status,
                   CASE WHEN s.final = {{true}} THEN 1 ELSE 0 END AS final, COALESCE(m.country, s.rcountry) AS country,
                   m.from_number AS sender, m.segments, s.sub_v, s.sub_at AS sub_r, s.fin_v, s.fin_at AS fin_r,
                   s.fail_code AS error_code, {self._price_number("s.price")} AS price, s.currency, {network} AS network
            FROM message_status s FULL JOIN messages m ON m.message_uuid = s.message_uuid
            WHERE {" AND ".join(where)}),
          timed AS MATERIALIZED (  -- narrow: every figure scans it
            SELECT at, status, final, CASE WHEN uuid IS NULL THEN 0 ELSE 1 END AS sent, country, sender, segments,
              error_code, price, currency, network, CASE
                WHEN final = 1 AND fin_v IS NOT NULL AND sub_v IS NOT NULL
                  THEN {self._milliseconds(f"{self._greatest}(fin_v - sub_v, 0)")}
                WHEN final = 1 AND fin_r IS NOT NULL
                  THEN {self._milliseconds(f"{self._greatest}(fin_r - COALESCE(at, sub_r, fin_r), 0)")}
              END AS latency,
              CASE WHEN final = 1 AND fin_v IS NOT NULL AND sub_v IS NOT NULL THEN 'vonage'
                   WHEN final = 1 AND fin_r IS NOT NULL THEN 'received' END AS basis
            FROM facts)"""
        return facts, params

    def _stats_sql(self, query: StatsQuery) -> tuple[str, list[object]]:
        head, params = self._facts(query, with_network=query.by is GroupBy.NETWORK)
        ranks = ", ".join(f"(({p} * MAX(n) + 99) / 100) AS k{p}" for p in PERCENTILES)  # ceil(p·n/100)
        latency = f""", ranked AS (SELECT latency, basis, ROW_NUMBER() OVER (ORDER BY latency) AS rn
                                  FROM timed WHERE latency IS NOT NULL),
            ranks AS (SELECT MAX(n) AS n, {ranks} FROM (SELECT COUNT(*) AS n FROM timed WHERE latency IS NOT NULL) AS c)"""
        picks = ", ".join(f"MAX(CASE WHEN rn = k{p} THEN latency END)" for p in PERCENTILES)
        hist = " ".join(f"WHEN latency < {bound} THEN '{label}'" for bound, label in BUCKETS)
        stale_at = query.now - query.stale_after
        group = self._group_sql(query.by)
        failure = "CASE WHEN status IN ('rejected', 'undeliverable') THEN error_code END"
        pieces = [
            # Per status, currency and failure code, in one scan: messages, sent, stale, segments, cost and
            # messages priced (status, cost and error figures are summed from these few rows in Python).
            f"SELECT 'status', status, currency, {failure}, COUNT(*), SUM(sent), SUM(CASE WHEN sent = 1 AND final = 0"
            " AND at < {m} THEN 1 ELSE 0 END), COALESCE(SUM(segments), 0), COALESCE(SUM(price), 0), COUNT(price), 0"
            f" FROM timed GROUP BY status, currency, {failure}",
            self._latency_piece(picks),
            f"SELECT 'hist', CASE {hist} ELSE '{SLOWEST}' END, NULL, NULL, COUNT(*), 0, 0, 0, 0, 0, 0 FROM timed"
            f" WHERE latency IS NOT NULL GROUP BY CASE {hist} ELSE '{SLOWEST}' END",
            f"SELECT 'series', {self._bucket('at', 'hour')}, NULL, NULL, SUM(sent), SUM(CASE WHEN sent = 1 AND"
            " final = 1 THEN 1 ELSE 0 END), SUM(CASE WHEN status = 'delivered' THEN 1 ELSE 0 END), 0, 0, 0, 0"
            f" FROM timed GROUP BY {self._bucket('at', 'hour')}",
        ]
        if group is not None:
            pieces.append(
                f"SELECT 'group', {group}, NULL, NULL, COUNT(*), SUM(sent), SUM(CASE WHEN status = 'delivered' THEN 1 ELSE 0"
                " END), SUM(CASE WHEN status = 'rejected' THEN 1 ELSE 0 END), SUM(CASE WHEN status ="
                " 'undeliverable' THEN 1 ELSE 0 END), SUM(CASE WHEN final = 1 THEN 1 ELSE 0 END),"
                f" COALESCE(SUM(price), 0) FROM timed GROUP BY {group}"
            )
        sql = head + latency + " " + " UNION ALL ".join(pieces)
        return sql, [*params, stale_at]

    def _group_sql(self, by: GroupBy | None) -> str | None:
        return {
            None: None,
            GroupBy.COUNTRY: "COALESCE(country, 'unknown')",
            GroupBy.NETWORK: "COALESCE(network, 'unknown')",
            GroupBy.SENDER: "COALESCE(sender, 'unknown')",
            GroupBy.ERROR: "COALESCE(error_code, CASE WHEN final = 1 THEN 'none' ELSE 'no final status' END)",
            GroupBy.HOUR: self._bucket("at", "hour"),
            GroupBy.DAY: self._bucket("at", "day"),
        }[by]


def _count_status(figures: StatsFigures, status: str, currency: Any, code: Any, v: list[Any]) -> None:
    """One (status, currency, failure code) row: into the status, sent, cost and error figures."""
    figures.statuses[status] = figures.statuses.get(status, 0) + int(v[0])
    figures.sent += int(v[1] or 0)
    figures.stale += int(v[2] or 0)
    figures.segments += int(v[3] or 0)
    if int(v[5] or 0):
        total, priced = figures.cost.get(str(currency or "?"), (0.0, 0))
        figures.cost[str(currency or "?")] = (total + float(v[4] or 0), priced + int(v[5]))
    if code is not None:
        figures.errors[str(code)] = figures.errors.get(str(code), 0) + int(v[0])


BUCKET_SECONDS = {"hour": 3600, "day": 86400}


def bucket_label(key: Any, unit: str) -> str:
    """A bucket's number (`_bucket`) as shown: `YYYY-MM-DD HH:00` for an hour, `YYYY-MM-DD` for a day."""
    import datetime

    if key is None:
        return str(key)
    start = datetime.datetime.fromtimestamp(int(key) * BUCKET_SECONDS[unit], datetime.UTC)
    return start.strftime("%Y-%m-%d %H:00" if unit == "hour" else "%Y-%m-%d")


def _collect(figures: StatsFigures, kind: str, key: Any, v: list[Any]) -> None:
    """One row of the UNION ALL into the figures."""
    if kind == "lat" and v[0]:
        figures.latency = Latency(
            int(v[0]), _f(v[1]), _f(v[2]), _f(v[3]), _f(v[4]), int(v[5] or 0), int(v[6] or 0)
        )
    elif kind == "hist":
        figures.histogram[str(key)] = int(v[0])
    elif kind == "series":
        figures.series.append((bucket_label(key, "hour"), int(v[0]), int(v[1] or 0), int(v[2] or 0)))
    elif kind == "group":
        a, b, c, d, e, f = (int(x or 0) for x in v[:6])
        figures.groups.append(Group(str(key), a, b, c, d, e, f, float(v[6] or 0)))


def _by_day(hours: list[tuple[str, int, int, int]]) -> list[tuple[str, int, int, int]]:
    days: dict[str, list[int]] = {}
    for hour, *counts in hours:
        day = days.setdefault(hour[:10], [0, 0, 0])
        for i, count in enumerate(counts):
            day[i] += count
    return [(day, a, b, c) for day, (a, b, c) in sorted(days.items())]


def _f(value: Any) -> float | None:
    return None if value is None else float(value)


class SqliteStats(Stats):
    """SQLite's pieces: events are keyed by their status row."""

    _events_by, _status_by, _greatest = "msg_id", "id", "MAX"

    def delivery_stats(self, query: StatsQuery) -> StatsFigures:
        # SQLite sorts (the nearest-rank window, the GROUP BYs) on helper threads when allowed: the other
        # core does half of each sort (1,000,000 messages: ~5.1 → ~4.8 s on two cores).
        import os

        self._run(f"PRAGMA threads = {min(4, os.cpu_count() or 1)}", ())
        return super().delivery_stats(query)

    def _price_number(self, column: str) -> str:  # folded only when a plain decimal (schema.SQLITE_PRICE_OK)
        return f"CAST({column} AS REAL)"

    def _bucket(self, column: str, unit: str) -> str:
        return f"CAST(CAST({column} / {BUCKET_SECONDS[unit]} AS INTEGER) AS TEXT)"  # epochs are positive

    def _network_of(self) -> str:
        return "COALESCE(network, CASE WHEN json_valid(body) THEN json_extract(body, '$.destination.network_code') END)"


class PostgresStats(Stats):
    """PostgreSQL's pieces."""

    _events_by, _status_by, _greatest = "message_uuid", "message_uuid", "GREATEST"

    def _latency_piece(self, picks: str) -> str:
        """percentile_disc is nearest rank (the first value whose share of the sorted values reaches p), in
        one sort inside the aggregate instead of a window over every latency."""
        fractions = ", ".join(f"{p / 100}" for p in PERCENTILES)
        chosen = "percentile_disc(ARRAY[" + fractions + "]) WITHIN GROUP (ORDER BY latency)"
        picked = ", ".join(f"({chosen})[{i + 1}]" for i in range(len(PERCENTILES)))
        return (f"SELECT 'lat', NULL, NULL, NULL, COUNT(latency), {picked}, MAX(latency), SUM(CASE WHEN basis = 'vonage'"
                " THEN 1 ELSE 0 END), SUM(CASE WHEN basis = 'received' THEN 1 ELSE 0 END) FROM timed")  # fmt: skip

    def _price_number(self, column: str) -> str:  # folded only when a plain decimal (schema.PG_PRICE_OK)
        return f"CAST({column} AS double precision)"

    def _bucket(self, column: str, unit: str) -> str:
        return f"CAST(CAST(floor({column} / {BUCKET_SECONDS[unit]}) AS bigint) AS text)"

    def _network_of(self) -> str:
        return """COALESCE(network, substring(body from '"network_code"\\s*:\\s*"([0-9]+)"'))"""


@dataclass(frozen=True)
class StatsReport:
    """`smsctl stats`: the figures with what they were asked of; one renderer each for the terminal, JSON
    and HTML (cli/stats.py, history/report.py)."""

    figures: StatsFigures
    query: StatsQuery
    generated_at: float

    @property
    def messages(self) -> int:
        return sum(self.figures.statuses.values())

    @property
    def not_sent(self) -> dict[str, int]:
        """Messages that never reached Vonage, by local state (refused, suppressed, unsent, unknown…)."""
        from smsctl.history.interface import LocalState

        local = {s.value for s in LocalState} - {LocalState.ACCEPTED.value}
        return {k: v for k, v in self.figures.statuses.items() if k in local}

    def count(self, status: str) -> int:
        return self.figures.statuses.get(status, 0)

    def rate(self, count: int, of: int | None = None) -> float | None:
        whole = self.figures.sent if of is None else of
        return round(count / whole, 4) if whole else None

    @property
    def pending(self) -> int:
        """Sent, without a final status yet (stale ones included)."""
        return self.figures.sent - sum(self.count(s) for s in ("delivered", "rejected", "undeliverable"))

    def errors(self) -> list[tuple[str, str | None, int]]:
        from smsctl.history.events import error_meaning

        ranked = sorted(self.figures.errors.items(), key=lambda kv: (-kv[1], kv[0]))
        return [(code, error_meaning(code), count) for code, count in ranked]

    def histogram(self) -> list[tuple[str, int]]:
        labels = [label for _, label in BUCKETS] + [SLOWEST]
        return [(label, self.figures.histogram.get(label, 0)) for label in labels]

    def to_json(self) -> dict[str, Any]:
        from smsctl.codec import iso_utc

        f, lat = self.figures, self.figures.latency
        outcome = {s: {"count": self.count(s), "rate": self.rate(self.count(s))} for s in ("delivered", "rejected", "undeliverable")}  # fmt: skip
        return {
            "generated_at": iso_utc(self.generated_at),
            "filters": {"since": iso_utc(self.query.since) if self.query.since else None, "batch": self.query.batch},
            "messages": self.messages, "sent": f.sent, "not_sent": self.not_sent, "statuses": f.statuses,
            **outcome,
            "pending": {"count": self.pending, "stale": f.stale},
            "latency": {"count": lat.count, "p50": lat.p50, "p90": lat.p90, "p99": lat.p99, "max": lat.max,
                        "basis": {"vonage": lat.vonage, "received": lat.received}},
            "histogram": [{"bucket": b, "count": n} for b, n in self.histogram()],
            "errors": [{"code": c, "meaning": m, "count": n} for c, m, n in self.errors()],
            "cost": [{"currency": c, "total": round(t, 6), "messages": n} for c, (t, n) in sorted(f.cost.items())],
            "segments": f.segments,
            "by": self.query.by.value if self.query.by else None,
            "groups": [{"key": g.key, "messages": g.messages, "sent": g.sent, "delivered": g.delivered,
                        "delivered_rate": self.rate(g.delivered, g.sent), "rejected": g.rejected,
                        "undeliverable": g.undeliverable, "pending": g.sent - g.final, "cost": round(g.cost, 6)}
                       for g in sorted(f.groups, key=self._group_order)],
            "series": {"unit": f.series_unit,
                       "points": [{"at": at, "sent": s, "final": fin, "delivered": d,
                                   "delivered_rate": self.rate(d, fin)} for at, s, fin, d in f.series]},
        }  # fmt: skip

    def _group_order(self, group: Group) -> tuple[int, str]:
        """Hours and days in time order; countries, networks, senders and errors biggest first."""
        if self.query.by in (GroupBy.HOUR, GroupBy.DAY):
            return 0, group.key
        return -group.messages, group.key


def share(rate: float | None) -> str:
    """A rate as the terminal, the report and their tests show it: `99.4%`, or `-` when there is none."""
    return "-" if rate is None else f"{100 * rate:.1f}%"


def duration(seconds: float | None) -> str:
    """A latency as shown: `240 ms` under a second, else `8.9 s`; `-` when there is none."""
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"
