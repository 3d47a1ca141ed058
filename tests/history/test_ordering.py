"""Property: whatever order (and however often) a message's events arrive, it ends in the same state."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsctl.history.events import parse_status
from smsctl.history.interface import HistoryStore
from smsctl.history.sqlite import Store

UUID = "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab"


def event(status: str, second: int) -> bytes:
    return json.dumps({"message_uuid": UUID, "status": status, "timestamp": f"2025-02-03T12:14:{second:02d}Z",
                       "to": "14155550101", "from": "x"}).encode()  # fmt: skip


lifecycles = st.sampled_from(["delivered", "rejected", "undeliverable"]).flatmap(
    lambda final: st.lists(
        st.sampled_from([event("submitted", 1), event(final, 5), event("read", 3), event("submitted", 2)]),
        min_size=1,
        max_size=12,
    ).map(lambda sent: (final, [*sent, event(final, 5)]))  # the final always arrives at least once
)


@settings(max_examples=300, deadline=None)
@given(lifecycles.flatmap(lambda fl: st.permutations(fl[1]).map(lambda order: (fl[0], order))))
def test_any_order_ends_in_the_same_final_state(memory_store: Store, case: tuple[str, list[bytes]]) -> None:
    import uuid as uuidlib

    final, arrivals = case
    fresh = str(
        uuidlib.uuid4()
    )  # a message of its own in the one store (migrating a store per example cost 2 s)
    apply_and_check(
        memory_store, fresh, final, [raw.replace(UUID.encode(), fresh.encode()) for raw in arrivals]
    )


@pytest.fixture(scope="module")
def memory_store() -> Iterator[Store]:
    store = Store(":memory:")  # the class allows it for speed; SMSCTL_DB=:memory: is refused
    yield store
    store.close()


def apply_and_check(store: HistoryStore, uuid: str, final: str, arrivals: list[bytes]) -> None:
    for raw in arrivals:
        with store.transaction():
            store.apply_status(parse_status(raw), time.time())
    current = store.current_status(uuid)
    assert current is not None
    assert (current.status, current.final, current.conflict) == (final, True, False)
    assert len(store.timeline(uuid)) == len(set(arrivals))
    assert current.duplicates == len(arrivals) - len(set(arrivals))


def test_any_order_ends_in_the_same_final_state_on_postgresql(pg_url: str) -> None:
    """The same property on the PostgreSQL backend: one database, a fresh message per example."""
    import uuid as uuidlib

    from smsctl.config import StoreKind, StoreLocation
    from smsctl.history.postgres import PgStore

    store = PgStore(StoreLocation(StoreKind.POSTGRESQL, url=pg_url))

    @settings(max_examples=60, deadline=None)
    @given(lifecycles.flatmap(lambda fl: st.permutations(fl[1]).map(lambda order: (fl[0], order))))
    def check(case: tuple[str, list[bytes]]) -> None:
        final, arrivals = case
        message = str(uuidlib.uuid4())
        apply_and_check(
            store, message, final, [raw.replace(UUID.encode(), message.encode()) for raw in arrivals]
        )

    try:
        check()
    finally:
        store.close()
