"""What a person sees of the listener: a Rich live table (or plain lines). A script's JSON Lines are
`webhooks/jsonlines.py`, which loads no Rich: a `listen --json` starts without it."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from smsctl.history.events import StatusEvent, error_title, parse_timestamp
from smsctl.history.interface import Route
from smsctl.webhooks.forwarding import ForwardReport, marker
from smsctl.webhooks.jsonlines import event_record
from smsctl.webhooks.server import Counters, ListenerEvent
from smsctl.webhooks.tunnel import TunnelCheck

STATUS_STYLE = {"delivered": "bold green", "rejected": "bold red", "undeliverable": "bold red",
                "submitted": "yellow", "accepted": "cyan"}  # fmt: skip
MAX_ROWS = 200


def clock(epoch: float) -> str:
    """HH:MM:SS local time; a timestamp no clock can show (year 10000, NaN) is shown as such, not fatal."""
    try:
        return datetime.fromtimestamp(epoch).strftime("%H:%M:%S")
    except (ValueError, OverflowError, OSError):
        return "??:??:??"


@dataclass
class InboundRow:
    """One inbound SMS in the live view's panel, with its forward's outcome once known."""

    at: float
    message_uuid: str
    sender: str
    text: str
    forward: str = ""


@dataclass
class MessageRow:
    """One message in the live table: its transitions in arrival order."""

    uuid: str
    to: str = ""
    client_ref: str = ""
    status: str = ""
    price: str = ""
    error: str = ""
    duplicates: int = 0
    forward: str = ""  # the last forward's outcome: `→ 200 12 ms`, `→ retry 3`, `→ failed 400`
    anomalies: list[str] = field(default_factory=list)
    # (status, Vonage's timestamp as sent, received at, anomaly): the timestamp is read only when the
    # row is drawn, so an event costs the listener's core as little as possible
    transitions: list[tuple[str, str, float, str | None]] = field(default_factory=list)

    def add(self, event: StatusEvent, current: str, anomaly: str | None, received_at: float) -> None:
        self.to = event.to or self.to
        self.client_ref = event.client_ref or self.client_ref
        self.status = current
        self.price = f"{event.price} {event.currency or ''}".strip() if event.price else self.price
        if event.error_code:
            self.error = (
                f"{event.error_code} {error_title(event.error_code) or event.error_detail or ''}".strip()
            )
        if anomaly:
            self.anomalies.append(anomaly)
        self.transitions.append((event.status, event.timestamp, received_at, anomaly))

    def timeline(self, delays: bool = True, width: int = 1_000) -> Text:
        """Transitions in Vonage's time order, with the delay since the first and arrival anomalies.

        On one line when it fits `width`, else one transition per line, so a line break never
        falls inside a transition.
        """
        ordered = [(status, parse_timestamp(timestamp) or received_at, anomaly)
                   for status, timestamp, received_at, anomaly in self.transitions]  # fmt: skip
        ordered.sort(key=lambda t: t[1])  # stable: equal times stay in arrival order

        def steps(times: bool) -> list[Text]:
            made = []
            for index, (status, at, anomaly) in enumerate(ordered):
                step = Text(status, STATUS_STYLE.get(status, "magenta"))
                if times:
                    step.append(f" {clock(at)}")
                    if index and delays:
                        step.append(f" (+{at - ordered[0][1]:.1f}s)", "dim")
                if anomaly:
                    step.append(f" [{anomaly.replace('_', ' ')}]", "bold yellow")
                made.append(step)
            return made

        one_line = Text(" → ").join(steps(True))
        if one_line.cell_len <= width:
            return one_line
        # One transition a line; on a screen too narrow for even that, without their times, so a
        # line never breaks inside a transition (its time alone on the next line).
        timed = steps(True)
        fits = all(step.cell_len + 2 <= width for step in timed)
        return Text("\n→ ").join(timed if fits else steps(False))


FORWARD_WIDTH = 18  # "→ failed no answer"
STATUS_WIDTH = 16  # "undeliverable" and a duplicate marker; a conflict marker wraps below
ERROR_WIDTH = {True: 22, False: 5}  # "1240 Illegal Number" or just "1240"
PRICE_WIDTH = 11


@dataclass(frozen=True)
class Layout:
    """Which columns fit a terminal width: the essential four always, the rest as room allows."""

    width: int
    client_ref: int  # max width, 0 = hidden
    price: bool
    error_title: bool  # "1240 Illegal Number" instead of "1240"
    delays: bool  # "(+3.2s)" after each transition
    forward: bool = False  # --forward-to is on: the forward column is essential

    @classmethod
    def for_width(cls, width: int, forward: bool = False) -> Layout:
        client_ref = 0 if width < 110 + 20 * forward else 18 if width < 150 else 36
        return cls(width, client_ref, price=width >= 130 + 20 * forward, error_title=width >= 100,
                   delays=width >= 100, forward=forward)  # fmt: skip

    def transitions_width(self, rows: list[MessageRow]) -> int:
        """The room left for transitions once the other columns (one space of padding each side) have theirs."""

        def widest(values: list[str], cap: int, header: str) -> int:
            # A column is as wide as its header at least (an empty "error" column still takes 5).
            return max(min(max((len(v) for v in values), default=0), cap), len(header)) + 2

        used = 10 + max(widest([r.to for r in rows], 15, "to"), 13) + STATUS_WIDTH + 2
        used += widest(
            [r.error if self.error_title else r.error[:4] for r in rows],
            ERROR_WIDTH[self.error_title],
            "error",
        )
        used += widest([r.client_ref for r in rows], self.client_ref, "client_ref") if self.client_ref else 0
        used += widest([r.price for r in rows], PRICE_WIDTH, "price") if self.price else 0
        used += widest([r.forward for r in rows], FORWARD_WIDTH, "→ your app") if self.forward else 0
        return max(18, self.width - used - 2)  # -2: the transitions column's own padding


class LiveView:
    """The Rich live view: header with URLs, one row per message, inbound panel, footer.

    It is itself the renderable, so each refresh lays the table out for the width it is given.
    """

    def __init__(self, counters: Counters, visible_rows: int = 20) -> None:
        self.counters = counters
        self.visible_rows = visible_rows
        self.info: dict[str, Any] = {}
        self.rows: OrderedDict[str, MessageRow] = OrderedDict()
        self.inbound: list[InboundRow] = []
        self.notices: list[str] = []

    def ready(self, info: dict[str, Any], counters: Counters | None = None) -> None:
        self.info = info
        self.counters = counters or self.counters

    def handle(self, event: ListenerEvent) -> None:
        if event.status_event is not None and event.applied is not None:
            row = self.rows.pop(event.status_event.message_uuid, None) or MessageRow(
                event.status_event.message_uuid
            )
            if event.applied.duplicate:
                row.duplicates += 1
            else:
                row.add(
                    event.status_event,
                    event.applied.status,
                    event.applied.anomaly,
                    event.received_at,
                )
            self.rows[row.uuid] = row  # most recent activity last
            while len(self.rows) > MAX_ROWS:
                self.rows.popitem(last=False)
        elif event.tunnel is not None:
            self.info["tunnel"] = event.tunnel
        elif event.forward is not None:
            self._forwarded(event.forward)
        elif event.kind == "inbound" and event.inbound is not None:
            message = event.inbound
            self.inbound.insert(0, InboundRow(event.received_at, message.message_uuid, message.from_ or "?",
                                              message.text or ""))  # fmt: skip
            del self.inbound[10:]
        elif event.kind in ("reconciled", "reconcile_failed", "reconcile_held", "optout_refused"):
            self.notices.insert(0, f"{clock(event.received_at)} {event.detail or event.reason}")
            del self.notices[5:]
        elif event.kind in ("rejected", "dead_letter"):
            self.notices.insert(0, f"{clock(event.received_at)} {event.kind}: {event.reason}")
            del self.notices[5:]

    def _forwarded(self, report: ForwardReport) -> None:
        """Mark the forward's outcome on its message's row, or on its inbound SMS."""
        if report.route is Route.STATUS:
            if (row := self.rows.get(report.message_uuid)) is not None:
                row.forward = marker(report)
            return
        for received in self.inbound:
            if received.message_uuid == report.message_uuid:
                received.forward = marker(report)

    def render(self) -> RenderableType:
        return self

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        try:
            layout = Layout.for_width(options.max_width, forward=bool(self.counters.forwarding))
            above: list[RenderableType] = [self._header()]
            below: list[RenderableType] = [self._inbound()] if self.inbound else []
            below.append(self._footer(options.max_width))
            # The table gets the lines the rest leaves, so the footer always stays on screen.
            used = sum(len(console.render_lines(part, options, pad=False)) for part in above + below)
            room = (options.height or console.height) - used - 1  # -1: the table's own header
            parts: list[RenderableType] = [*above, self._table(layout, room), *below]
        except Exception as exc:  # the refresh thread must survive anything; the listener keeps storing
            self.counters.view_errors += 1
            parts = [Text(f"display error ({type(exc).__name__}); events are still stored", "bold red")]
        yield from parts

    def _header(self) -> Panel:
        info = self.info
        lines = Text()
        lines.append("listening on ", "dim").append(str(info.get("local_url", "…")))
        public = info.get("public_url")
        missing = info.get("public_hint") or "none (set --public-url, BASE_URL or run ngrok)"
        lines.append("   public ", "dim").append(public or missing, "" if public else "yellow")
        tunnel = info.get("tunnel")
        if isinstance(tunnel, TunnelCheck):
            if tunnel.reachable:
                lines.append(f"  ✓ reachable ({tunnel.ms:.0f} ms)", "green")
            else:
                lines.append(f"\ntunnel ✗ {tunnel.diagnosis}", "bold red")
        elif info.get("tunnel_check"):
            lines.append("  checking the tunnel…", "dim")
        if isinstance(application := info.get("application"), dict):
            lines.append("\napplication ", "dim").append(str(application.get("application_id")))
            back = (
                "the previous ones are put back on exit"
                if application.get("restore_on_exit")
                else "kept on exit"
            )
            lines.append(f" webhooks point here ({back})", "dim")
        for label, key in (
            ("forward →", "forward_to"),
            ("inbound →", "forward_inbound_to"),
            ("inspector", "ui_url"),
        ):
            if info.get(key):
                lines.append(f"\n{label:<11} ", "dim").append(str(info[key]), "bold")
        lines.append("\nstatus URL  ", "dim").append(str(info.get("status_url", "")), "bold")
        lines.append("\ninbound URL ", "dim").append(str(info.get("inbound_url", "")), "bold")
        lines.append("\nstore ", "dim").append(str(info.get("store", "")), "dim")
        if (sharing := info.get("listeners")) and int(sharing) > 1:
            lines.append(f"  shared by {sharing} listeners", "dim")
        return Panel(lines, title="smsctl listen", subtitle="Ctrl-C to stop", border_style="blue")

    def _table(self, layout: Layout, lines: int = 1_000) -> Table:
        # Essential columns never wrap; transitions wrap between words (never inside one); the
        # optional ones are cut with an ellipsis or left out, so nothing is spelled down the screen.
        table = Table(expand=True, box=None, header_style="bold")
        table.add_column("message", no_wrap=True, min_width=8)
        table.add_column("to", no_wrap=True, min_width=11)
        if layout.client_ref:
            table.add_column("client_ref", no_wrap=True, overflow="ellipsis", max_width=layout.client_ref)
        table.add_column("status", min_width=13, max_width=STATUS_WIDTH)
        table.add_column("transitions", ratio=1, min_width=20, no_wrap=True, overflow="ellipsis")
        if layout.price:
            table.add_column("price", no_wrap=True, max_width=PRICE_WIDTH)
        if layout.forward:
            table.add_column("→ your app", no_wrap=True, overflow="ellipsis", max_width=FORWARD_WIDTH)
        table.add_column(
            "error", no_wrap=True, overflow="ellipsis", max_width=ERROR_WIDTH[layout.error_title]
        )
        # As many rows as the screen has lines for (each takes one at least), not a fixed count.
        candidates = list(reversed(self.rows.values()))[: max(self.visible_rows, min(lines, MAX_ROWS))]
        room = layout.transitions_width(candidates)
        for row in candidates:
            height = self._row_height(row, layout, room)
            if height > lines:
                break
            lines -= height
            table.add_row(*self._cells(row, layout, room))
        if not self.rows:
            table.add_row(
                "", "", *([""] if layout.client_ref else []), "", Text("waiting for webhooks…", "dim")
            )
        return table

    @staticmethod
    def _row_height(row: MessageRow, layout: Layout, room: int) -> int:
        """Lines a row takes: one, or one per transition when they do not fit; two if the status wraps."""
        transitions = 1 if row.timeline(layout.delays, room).cell_len <= room else len(row.transitions)
        status = 2 if row.duplicates or "conflicting_final" in row.anomalies else 1
        return max(transitions, status)

    def _cells(self, row: MessageRow, layout: Layout, room: int) -> list[Text]:
        """One row's cells; data is plain Text (never markup), and a row that cannot be shown is counted."""
        try:
            status = Text(row.status, STATUS_STYLE.get(row.status, "magenta"))
            if row.duplicates:
                status.append(f" dup×{row.duplicates}", "dim")
            if "conflicting_final" in row.anomalies:
                status.append(" ⚠ conflict", "bold red")
            error = row.error if layout.error_title else row.error.split(" ")[0]
            cells = [Text(row.uuid[:8]), Text(row.to)]
            if layout.client_ref:
                cells.append(Text(row.client_ref))
            cells += [status, row.timeline(layout.delays, room)]
            if layout.price:
                cells.append(Text(row.price))
            if layout.forward:
                style = "red" if "failed" in row.forward else "yellow" if "retry" in row.forward else "green"
                cells.append(Text(row.forward, style))
            return [*cells, Text(error, "red")]
        except Exception as exc:  # one odd event must not freeze the whole screen
            self.counters.view_errors += 1
            return [Text(row.uuid[:8]), Text(f"cannot display: {type(exc).__name__}", "red")]

    def _inbound(self) -> Panel:
        table = Table(box=None, show_header=False)
        for received in self.inbound:
            table.add_row(clock(received.at), Text(received.sender), Text(received.text),
                          Text(received.forward, "red" if "failed" in received.forward else "green"))  # fmt: skip
        return Panel(table, title="inbound", border_style="cyan")

    def _footer(self, width: int = 10_000) -> Text:
        """The counters, packed into lines of `width` whole phrases at a time: a narrow screen breaks
        between phrases, never inside one ("2.4 events/s" stays together)."""
        text = Text()
        used = 0
        for phrase in self._footer_phrases():
            if phrase.plain.startswith("\n"):  # a notice: always on its own line
                text.append_text(phrase)
                used = width
                continue
            gap = 2 if used else 0
            if used and used + gap + phrase.cell_len > width:
                text.append("\n")
                used, gap = 0, 0
            text.append(" " * gap)
            text.append_text(phrase)
            used += gap + phrase.cell_len
        return text

    def _footer_phrases(self) -> list[Text]:
        c = self.counters
        phrases = [Text(f"since {clock(c.started_at)}:", "dim")]
        phrases += [
            Text(f"{status} {n:,}", STATUS_STYLE.get(status, "magenta"))
            for status, n in sorted(c.statuses.items())
        ]
        phrases += [Text(f"│ {c.events_per_second():,.1f} events/s"), Text(f"duplicates {c.duplicates:,}"),
                    Text(f"dead letters {c.dead_letters:,}", "red" if c.dead_letters else "")]  # fmt: skip
        rejected = ", ".join(f"{reason} {n:,}" for reason, n in c.rejected.most_common())
        phrases.append(Text(f"rejected: {rejected or 'none'}", "red" if rejected else ""))
        if c.stale_tokens or c.clock_skew:
            phrases.append(
                Text(f"stale tokens {c.stale_tokens}  clock skew {c.clock_skew} (check NTP)", "yellow")
            )
        if c.previous_secret:
            phrases.append(Text(f"signed with the previous secret {c.previous_secret}", "yellow"))
        if c.forwarding:
            phrases += [Text(f"│ forwarded {c.forwarded:,}", "green"),
                        Text(f"retries {c.forward_retries:,}", "yellow" if c.forward_retries else ""),
                        Text(f"failed {c.forward_failed:,}", "bold red" if c.forward_failed else "")]  # fmt: skip
        if c.stale_messages:
            phrases.append(Text(f"│ stale {c.stale_messages:,}: smsctl reconcile", "bold yellow"))
        if c.reconciled:
            phrases.append(Text(f"reconciled {c.reconciled:,}", "green"))
        if c.suppressed or c.capped:
            phrases.append(Text(f"│ sends stopped: opted out {c.suppressed:,}, caps {c.capped:,}", "yellow"))
        if c.store_unavailable:
            phrases.append(Text(f"store unavailable {c.store_unavailable}", "bold red"))
        if c.view_errors:
            phrases.append(Text(f"display errors {c.view_errors}", "bold red"))
        phrases += [Text(f"\n{notice}", "dim") for notice in self.notices[:3]]
        return phrases


REFRESH_EVERY = 0.25  # seconds: 4 frames a second while drawing is cheap
DRAW_BUDGET = 0.02  # at most this share of a core goes to drawing, however big the table


def next_refresh_in(draw_cost: float) -> float:
    """Seconds until the next frame, given the CPU seconds the last one took.

    The listener shares its core with the table. A full 120×40 table costs ~20 ms to lay out, which at
    4 frames a second is 8% of the core taken from storing webhooks; under that load the table
    refreshes less often (once a second at 20 ms), so drawing stays within DRAW_BUDGET.
    """
    return max(REFRESH_EVERY, draw_cost / DRAW_BUDGET)


class _Refresher:
    """Redraws a Rich Live display on its own thread, paced by next_refresh_in (Rich's own refresh
    thread draws at a fixed rate whatever a frame costs)."""

    def __init__(self, live: Any) -> None:
        import threading

        self.live = live
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="smsctl-live", daemon=True)

    def _run(self) -> None:
        import time

        from smsctl.history.scheduling import batch_scheduling

        batch_scheduling()  # a frame waits for the loop to block rather than preempting it
        wait = REFRESH_EVERY
        while not self.stop.wait(wait):
            started = time.thread_time()  # this thread's CPU: the frame's cost, not its GIL waits
            self.live.refresh()
            wait = next_refresh_in(time.thread_time() - started)


class LiveTerminalView:
    """Drives a Rich Live display of a LiveView on stdout, from `ready` until `stopped`."""

    def __init__(self) -> None:
        self.live: Any = None
        self.view: LiveView | None = None
        self._refresher: _Refresher | None = None

    def ready(self, info: dict[str, Any], counters: Counters) -> None:
        from rich.live import Live

        from smsctl.output import out

        self.view = LiveView(counters)
        self.view.ready(info)
        self.live = Live(get_renderable=self.view.render, console=out(), auto_refresh=False,
                         redirect_stderr=False)  # fmt: skip
        self.live.start(refresh=True)
        self._refresher = _Refresher(self.live)
        self._refresher.thread.start()

    def handle(self, event: ListenerEvent) -> None:
        if self.view is not None:
            self.view.handle(event)

    def stopped(self, counters: Counters | None = None) -> None:
        if self._refresher is not None:
            self._refresher.stop.set()
            self._refresher.thread.join()
            self._refresher = None
        if self.live is not None:
            self.live.stop()  # draws the last frame
            self.live = None


class PlainLinesView:
    """One readable line per event, for a demo whose output is not a terminal."""

    def ready(self, info: dict[str, Any], counters: Counters) -> None:
        from smsctl.output import note

        note(f"listener on {info['local_url']}, emulator on {info.get('api_url', '?')}")

    def handle(self, event: ListenerEvent) -> None:
        from smsctl.output import out

        record = event_record(event)
        subject = (record.get("message_uuid") or "")[:8]
        what = (
            record.get("status") or record.get("reason") or (marker(event.forward) if event.forward else "")
        )
        if event.inbound is not None:
            what = f"from +{event.inbound.from_}: {event.inbound.text or ''}"
        now = record.get("current_status")
        out().print(f"{clock(event.received_at)} {event.kind:<11} {subject:<8} {what}"
                    + (f" (now {now})" if now and now != what else ""), highlight=False)  # fmt: skip

    def stopped(self, counters: Counters | None = None) -> None:
        pass
