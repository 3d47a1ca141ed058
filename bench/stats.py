"""Stats benchmark: `smsctl stats --json --by country` over 100,000 and 1,000,000 messages (two events each
for the final ones), on SQLite and on PostgreSQL: time and peak RSS, beside the floor measured in the same
run (one plain pass over the events table in the same database: COUNT and MIN/MAX of two columns).

    python bench/stats.py            # 100,000 and 1,000,000 messages on both backends (SQLite stores cached in bench/out)
    python bench/stats.py --quick    # 20,000 messages; for CI, figures not judged
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import OUT, SMSCTL, machine, table  # noqa: E402
from bench.export import measure  # noqa: E402

BUDGET = {"sqlite": 5.0, "postgresql": 3.0}  # seconds for 1,000,000 messages (issue 24)
FLOOR = "SELECT COUNT(*), MIN(received_at), MAX(timestamp), MAX(price) FROM events"
T0 = 1_764_000_000.0

# One statement per table, the same mix on both backends: 10% GB, 10% FR, the rest US; a message every
# half second; 2% rejected (1240), ~2.7% undeliverable (1260), ~1% still without a final status.
STATUS = ("CASE WHEN i % 50 = 0 THEN 'rejected' WHEN i % 37 = 0 THEN 'undeliverable' WHEN i % 101 = 0 THEN"
          " 'submitted' ELSE 'delivered' END")  # fmt: skip


def build_sqlite(path: Path, messages: int) -> None:
    from smsctl.history.sqlite import Store

    Store(path).close()
    conn = sqlite3.connect(path)
    iso = "strftime('%Y-%m-%dT%H:%M:%fZ', {}, 'unixepoch')"
    with conn:
        conn.execute(
            f"""WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
            INSERT INTO messages (client_ref, message_uuid, to_number, from_number, encoding, segments, state,
                                  created_at, updated_at, country)
            SELECT 'ref-' || i, printf('%08x-0000-4000-8000-%012x', i, i), '1212555' || printf('%04d', i % 10000),
                   'SMSCTL', 'GSM-7', 1 + (i % 3 = 0), 'accepted', {T0} + i * 0.5, {T0} + i * 0.5,
                   CASE i % 10 WHEN 0 THEN 'GB' WHEN 1 THEN 'FR' ELSE 'US' END FROM n""",
            (messages - 1,),
        )
        conn.execute(
            f"""INSERT INTO message_status (message_uuid, status, final, first_seen, updated_at)
            SELECT message_uuid, s, s != 'submitted', created_at, created_at
            FROM (SELECT message_uuid, created_at, {STATUS.replace("i %", "(id - 1) %")} AS s FROM messages)"""
        )
        conn.execute(
            f"""INSERT INTO events (msg_id, message_uuid, status, timestamp, received_at, price, currency, body)
            SELECT id, message_uuid, 'submitted', {iso.format("first_seen + 0.2")}, first_seen + 0.25,
                   '0.0057', 'EUR', '{{}}' FROM message_status"""
        )
        conn.execute(
            f"""INSERT INTO events (msg_id, message_uuid, status, timestamp, received_at, error_code, price,
                                    currency, body)
            SELECT id, message_uuid, status, {iso.format("first_seen + 1 + (id % 97) / 10.0")},
                   first_seen + 1.05 + (id % 97) / 10.0, CASE status WHEN 'rejected' THEN '1240'
                   WHEN 'undeliverable' THEN '1260' END, '0.0057', 'EUR', '{{}}' FROM message_status WHERE final = 1"""
        )
    conn.close()


def build_postgres(url: str, messages: int) -> None:
    import psycopg

    from smsctl.config import StoreKind, StoreLocation
    from smsctl.history.postgres import PgStore

    PgStore(StoreLocation(StoreKind.POSTGRESQL, None, url)).close()
    iso = "to_char(to_timestamp({}) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f"""INSERT INTO messages (client_ref, message_uuid, to_number, from_number, encoding, segments, state,
                                  created_at, updated_at, country)
            SELECT 'ref-' || i, lpad(to_hex(i), 8, '0') || '-0000-4000-8000-' || lpad(to_hex(i), 12, '0'),
                   '1212555' || lpad((i % 10000)::text, 4, '0'), 'SMSCTL', 'GSM-7', CASE WHEN i % 3 = 0 THEN 2 ELSE 1 END,
                   'accepted', {T0} + i * 0.5, {T0} + i * 0.5,
                   CASE i % 10 WHEN 0 THEN 'GB' WHEN 1 THEN 'FR' ELSE 'US' END FROM generate_series(0, {messages - 1}) AS i"""
        )
        conn.execute(
            f"""INSERT INTO message_status (message_uuid, status, final, rank, first_seen, updated_at)
            SELECT message_uuid, s, s != 'submitted', CASE WHEN s = 'submitted' THEN 1 ELSE 2 END, created_at, created_at
            FROM (SELECT message_uuid, created_at, {STATUS.replace("i %", "(id - 1) %")} AS s FROM messages) AS m"""
        )
        conn.execute(
            f"""INSERT INTO events (message_uuid, status, timestamp, received_at, price, currency, body)
            SELECT message_uuid, 'submitted', {iso.format("first_seen + 0.2")}, first_seen + 0.25, '0.0057', 'EUR', '{{}}'
            FROM message_status"""
        )
        conn.execute(
            f"""INSERT INTO events (message_uuid, status, timestamp, received_at, error_code, price, currency, body)
            SELECT message_uuid, status, {iso.format("first_seen + 1 + (id % 97) / 10.0")},
                   first_seen + 1.05 + (id % 97) / 10.0, CASE status WHEN 'rejected' THEN '1240'
                   WHEN 'undeliverable' THEN '1260' END, '0.0057', 'EUR', '{{}}' FROM message_status WHERE final"""
        )
        conn.execute("VACUUM ANALYZE")


def floor_seconds(store: str) -> float:
    started = time.perf_counter()
    if store.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(store) as conn:
            conn.execute(FLOOR).fetchall()
    else:
        with sqlite3.connect(store) as conn:
            conn.execute(FLOOR).fetchall()
    return time.perf_counter() - started


def run(backend: str, store: str, size: int, rows: list[list[str]], verdicts: list[str]) -> None:
    env = {**os.environ, "SMSCTL_DB": store}
    floor = min(floor_seconds(store) for _ in range(2))
    seconds, mb = min(measure([*SMSCTL, "stats", "--json", "--by", "country"], env) for _ in range(2))
    rows.append(
        [backend, f"{size:,}", f"{seconds:.2f}", f"{floor:.2f}", f"{seconds / floor:.1f}x", f"{mb:.0f}"]
    )
    if size == 1_000_000:
        ok = seconds <= BUDGET[backend]
        verdicts.append(f"{backend}: {seconds:.2f} s for 1,000,000 messages, budget {BUDGET[backend]:.0f} s: "
                        + ("OK" if ok else "OVER"))  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    quick = parser.parse_args().quick
    sizes = [20_000] if quick else [100_000, 1_000_000]
    OUT.mkdir(exist_ok=True)
    rows: list[list[str]] = []
    verdicts: list[str] = []
    print(f"stats benchmark: `smsctl stats --json --by country` (best of 2, whole process); {machine()}")
    for size in sizes:
        path = OUT / f"stats-{size}.db"
        if not path.exists():
            print(f"building a SQLite store of {size:,} messages…", file=sys.stderr)
            build_sqlite(path, size)
        else:  # kept from an earlier run: upgrade it, as stats opens read-only
            from smsctl.history.sqlite import Store

            Store(path).close()
        run("sqlite", str(path), size, rows, verdicts)
    from tests.pg import Cluster, find_bindir

    bindir = find_bindir()
    if bindir is None:
        print("PostgreSQL not installed (apt-get install postgresql): its half is skipped", file=sys.stderr)
    else:
        cluster = Cluster(bindir).start()
        try:
            for size in sizes:
                url = cluster.create_database()
                print(f"building a PostgreSQL store of {size:,} messages…", file=sys.stderr)
                build_postgres(url, size)
                run("postgresql", url, size, rows, verdicts)
        finally:
            cluster.stop()
    print(table(["backend", "messages", "stats s", "floor s", "× floor", "peak MB"], rows))
    for verdict in verdicts:
        print(verdict)
    return 0 if quick or all(v.endswith("OK") for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
