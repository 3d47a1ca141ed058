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
