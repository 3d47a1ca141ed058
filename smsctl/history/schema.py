"""Table definitions both backends' migrations share, with each backend's own types filled in."""

FORWARDS_TABLE = """
        CREATE TABLE forwards (
            id {id},
            route TEXT NOT NULL,               -- status | inbound
            message_uuid TEXT NOT NULL,        -- one message's forwards are delivered in order
            target TEXT NOT NULL,
            body {blob} NOT NULL,              -- emptied once delivered (the event keeps its own copy)
            content_type TEXT NOT NULL,
            token TEXT,                        -- the original bearer token
            state TEXT NOT NULL,               -- pending | delivered | failed
            attempts INTEGER NOT NULL DEFAULT 0,
            next_at {real} NOT NULL,
            expires_at {real} NOT NULL,
            lease_until {real} NOT NULL DEFAULT 0,
            last_code INTEGER,
            last_error TEXT,
            last_ms {real},
            created_at {real} NOT NULL,
            done_at {real}
        );
        CREATE INDEX forwards_state ON forwards (state, message_uuid, id);
"""


# Each forward belongs to a route: the listener's target and the options that shape its requests
# (`route target`, plus a digest of its headers and re-signing when it has any), so listeners with
# different targets or headers on one database each deliver only their own rows. `blocked` marks a
# forward that waits behind an earlier pending one of its message on its route: claims and "next
# due" are then range scans of one partial index, O(due rows) however long the backlog is. No index on
# `state` alone: SQLite's planner would prefer it to the queue's, and walk every pending row per insert.
FORWARD_ROUTES = """
        ALTER TABLE forwards ADD COLUMN route_key TEXT NOT NULL DEFAULT '';
        ALTER TABLE forwards ADD COLUMN blocked {bool} NOT NULL DEFAULT {false};
        UPDATE forwards SET route_key = route || ' ' || target;
        UPDATE forwards SET next_at = {greatest}(next_at, lease_until) WHERE state = 'pending';
        UPDATE forwards SET blocked = {true} WHERE state = 'pending' AND EXISTS (
            SELECT 1 FROM forwards g WHERE g.state = 'pending' AND g.route_key = forwards.route_key
            AND g.message_uuid = forwards.message_uuid AND g.id < forwards.id);
        DROP INDEX forwards_state;
        CREATE INDEX forwards_due ON forwards (route_key, next_at) WHERE state = 'pending' AND blocked = {false};
        CREATE INDEX forwards_queue ON forwards (route_key, message_uuid, id) WHERE state = 'pending';
        CREATE INDEX forwards_failed ON forwards (id) WHERE state = 'failed';
"""


# `listen --update-app`: the application's own webhook URLs, kept durably per application the first time
# a listener replaces them (and again whenever someone set new ones by hand), and every URL an smsctl
# listener ever set, so such a URL, left behind by a listener that died, is never taken for the app's own.
APP_URLS = """
        CREATE TABLE app_originals (
            application_id TEXT PRIMARY KEY,
            status_url TEXT,
            inbound_url TEXT,
            saved_at {real} NOT NULL
        );
        CREATE TABLE app_listener_urls (
            application_id TEXT NOT NULL,
            status_url TEXT NOT NULL,
            inbound_url TEXT,
            set_at {real} NOT NULL,
            PRIMARY KEY (application_id, status_url)
        );
"""


# Reconciliation (`smsctl reconcile`): which source told us each event (`webhook`, or `reports` for a
# Reports API record) and what a record adds (network, country, latency); how the store first heard
# of a message (`via`: `reports` for one only the Reports API knew); a partial index over the messages
# still without a final status, which `stale` counts and `reconcile` reads; and leases, so one
# listener at a time reconciles a shared SQLite store (PostgreSQL uses an advisory lock instead).
RECONCILE = """
        ALTER TABLE events ADD COLUMN source TEXT NOT NULL DEFAULT 'webhook';
        ALTER TABLE events ADD COLUMN network TEXT;
        ALTER TABLE events ADD COLUMN country TEXT;
        ALTER TABLE events ADD COLUMN latency_ms {real};
        ALTER TABLE message_status ADD COLUMN via TEXT NOT NULL DEFAULT 'webhook';
        CREATE INDEX message_status_open ON message_status (first_seen) WHERE final = {false};
        CREATE TABLE leases (
            name TEXT PRIMARY KEY,
            holder TEXT NOT NULL,
            until {real} NOT NULL
        );
"""


# The opt-out ledger (issue 23): each (number, sender) pair's current state, and every change with its
# source, never overwritten. `sender` is the number or sender ID the recipient opted out of; `*` is all
# of them (STOPALL, or `optout add` without --sender). A send records whether it overrode the ledger.
OPTOUTS = """
        CREATE TABLE optouts (
            number TEXT NOT NULL,
            sender TEXT NOT NULL,
            opted_out {bool} NOT NULL,
            source TEXT NOT NULL,              -- inbound | manual | import | carrier
            reference TEXT,                    -- the inbound SMS, the rejected message, the file
            changed_at {real} NOT NULL,
            PRIMARY KEY (number, sender)
        );
        CREATE TABLE optout_events (
            id {id},
            number TEXT NOT NULL,
            sender TEXT NOT NULL,
            opted_out {bool} NOT NULL,
            source TEXT NOT NULL,
            reference TEXT,
            at {real} NOT NULL
        );
        CREATE INDEX optout_events_number ON optout_events (number, id);
        ALTER TABLE messages ADD COLUMN optout_ignored {bool} NOT NULL DEFAULT {false};
"""


# A send's destination country (ISO 3166, from the numbering plans at send time): spend estimates, the
# new-country warning and stats by country read it with an index instead of parsing numbers.
DESTINATION_COUNTRY = """
        ALTER TABLE messages ADD COLUMN country TEXT;
        CREATE INDEX messages_country ON messages (country);
"""


# Each message's events folded onto its status row as they are stored (a trigger, so every path that
# stores an event folds it: webhooks, the Reports API, `db copy`): `stats` then reads one row per message
# instead of every event. `sub_v`/`fin_v`: the earliest readable Vonage time of a `submitted` and of a
# final event, as epoch seconds (worked out once, when the event is stored); `*_at`: our receive times.
FOLDED_COLUMNS = ("sub_v {real}", "sub_at {real}", "fin_v {real}", "fin_at {real}", "fail_code TEXT", "price TEXT",
                  "currency TEXT", "rcountry TEXT")  # fmt: skip
FINAL_SQL = "('delivered', 'rejected', 'undeliverable')"
FOLD_FROM = {  # each folded column: its aggregate over a message's events (the backfill) …
    "sub_v": "MIN(CASE WHEN status = 'submitted' THEN {epoch} END)",
    "sub_at": "MIN(CASE WHEN status = 'submitted' THEN received_at END)",
    "fin_v": f"MIN(CASE WHEN status IN {FINAL_SQL} THEN {{epoch}} END)",
    "fin_at": f"MIN(CASE WHEN status IN {FINAL_SQL} THEN received_at END)",
    "fail_code": "MAX(CASE WHEN status IN ('rejected', 'undeliverable') THEN error_code END)",
    "price": "MAX(CASE WHEN {price_ok} THEN price END)",
    "currency": "MAX(currency)",
    "rcountry": "MAX(country)",
}
FOLD_NEW = {  # … and the same fold of one new event (NEW, its epoch `{epoch}`) into the row's value so far
    "sub_v": "CASE WHEN NEW.status = 'submitted' AND {epoch} < COALESCE(sub_v, 1e300) THEN {epoch} ELSE sub_v END",
    "sub_at": "CASE WHEN NEW.status = 'submitted' AND (sub_at IS NULL OR NEW.received_at < sub_at) THEN NEW.received_at ELSE sub_at END",
    "fin_v": f"CASE WHEN NEW.status IN {FINAL_SQL} AND {{epoch}} < COALESCE(fin_v, 1e300) THEN {{epoch}} ELSE fin_v END",
    "fin_at": f"CASE WHEN NEW.status IN {FINAL_SQL} AND (fin_at IS NULL OR NEW.received_at < fin_at) THEN NEW.received_at ELSE fin_at END",
    "fail_code": "CASE WHEN NEW.status IN ('rejected', 'undeliverable') AND NEW.error_code IS NOT NULL AND (fail_code IS NULL OR NEW.error_code > fail_code) THEN NEW.error_code ELSE fail_code END",
    "price": "CASE WHEN {price_ok} AND (price IS NULL OR NEW.price > price) THEN NEW.price ELSE price END",
    "currency": "CASE WHEN NEW.currency IS NOT NULL AND (currency IS NULL OR NEW.currency > currency) THEN NEW.currency ELSE currency END",
    "rcountry": "CASE WHEN NEW.country IS NOT NULL AND (rcountry IS NULL OR NEW.country > rcountry) THEN NEW.country ELSE rcountry END",
}


# A price is folded only when it is a plain decimal that casts without fail (the webhook's `usage.price` is
# the network's text; anything else is no price), so `stats` casts folded prices without checking each one
# again (a regular expression over 1,000,000 rows cost PostgreSQL a quarter of a second). `{c}`: the column.
SQLITE_PRICE_OK = ("({c} GLOB '[0-9]*' AND {c} GLOB '*[0-9]' AND {c} NOT GLOB '*[^0-9.]*' AND {c} NOT GLOB '*.*.*'"
                   " AND length({c}) < 20)")  # PostgreSQL's ^[0-9]+(\.[0-9]+)?$ in GLOBs  # fmt: skip
PG_PRICE_OK = "({c} ~ '^[0-9]+(\\.[0-9]+)?$' AND length({c}) < 20)"


def folded_sets(epoch: str, price_ok: str) -> str:
    """`col = fold, …` of one new event, for the triggers (`epoch`: SQL for NEW's Vonage time, or NULL;
    `price_ok`: the dialect's SQLITE_PRICE_OK or PG_PRICE_OK)."""
    ok = price_ok.format(c="NEW.price")
    return ", ".join(f"{c} = {FOLD_NEW[c].format(epoch=epoch, price_ok=ok)}" for c in FOLD_FROM)


def folded_backfill(epoch: str, price_ok: str) -> str:
    """`aggregate AS col, …` for the migrations' backfill from the events already stored."""
    ok = price_ok.format(c="price")
    return ", ".join(f"{FOLD_FROM[c].format(epoch=epoch, price_ok=ok)} AS {c}" for c in FOLD_FROM)


# A Vonage timestamp as epoch seconds, NULL when the listener could not read it (anomaly bad_timestamp).
# PostgreSQL casts only the one ISO form that cannot fail once Python has read it (a failing cast in the
# trigger would refuse the webhook).
SQLITE_EPOCH = (
    "CASE WHEN {p}anomaly IS NOT 'bad_timestamp' THEN (julianday({p}timestamp) - 2440587.5) * 86400.0 END"
)
PG_ISO = r"^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}[T ][0-9]{{2}}:[0-9]{{2}}:[0-9]{{2}}(\.[0-9]+)?(Z|[+-][0-9]{{2}}:?[0-9]{{2}})$"
PG_EPOCH = ("CASE WHEN {p}anomaly IS DISTINCT FROM 'bad_timestamp' AND {p}timestamp ~ '" + PG_ISO
            + "' THEN extract(epoch FROM CAST({p}timestamp AS timestamptz)) END")  # fmt: skip


# Send caps (SMSCTL_DAILY_CAP, SMSCTL_BATCH_CAP): messages counted per UTC day and per batch as each send
# is recorded, in the same transaction, so a cap holds across every sender of the store.
SEND_COUNTS = """
        CREATE TABLE send_counts (
            key TEXT PRIMARY KEY,              -- [spend-]day:YYYY-MM-DD | [spend-]batch:ID
            messages INTEGER NOT NULL
        );
"""
