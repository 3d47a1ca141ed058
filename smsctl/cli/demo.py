"""`smsctl demo`: the emulator, a listener and a handful of messages, offline, in one command."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from smsctl.cli.options import DebugOption, JsonOption

if TYPE_CHECKING:
    from smsctl.sandbox.demo import DemoResult


def demo(
    time_scale: Annotated[
        float, typer.Option(min=0.01, help="Multiply the emulator's delays by this.")
    ] = 0.5,
    bound: Annotated[
        float, typer.Option(min=1, help="Stop after this many seconds even if not all are final.")
    ] = 30,
    json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Run the whole tool offline: throwaway credentials, the emulator, a listener and live statuses.

    Needs no account and no configuration, and leaves your own store untouched.

    Example: smsctl demo
    """
    import asyncio

    from smsctl.output import emit_json, reporting
    from smsctl.sandbox.demo import run_demo

    with reporting(json_output, debug):
        view = _view(json_output)
        try:
            result = asyncio.run(
                run_demo(view, time_scale=time_scale, bound=bound, on_sent=_sent(json_output))
            )
        finally:
            view.stopped()
        if json_output:
            emit_json(result.to_json())
        else:
            _render_summary(result)


def _view(json_output: bool) -> Any:
    if json_output:
        from smsctl.webhooks.jsonlines import JsonLinesView

        return JsonLinesView()
    from smsctl.webhooks.view import LiveTerminalView, PlainLinesView

    return LiveTerminalView() if sys.stdout.isatty() else PlainLinesView()


def _sent(json_output: bool) -> Any:
    def report(result: Any, scenario: str) -> None:
        if not json_output and not sys.stdout.isatty():
            from smsctl.output import note

            note(f"sent {result.message_uuid[:8]} to {result.to} ({scenario})")

    return report


def _render_summary(result: DemoResult) -> None:
    from rich.table import Table
    from rich.text import Text

    from smsctl.output import out, print_data
    from smsctl.sandbox.emulator import DEFAULT_SCENARIO, SCENARIOS
    from smsctl.webhooks.view import STATUS_STYLE

    narrow = out().width < 100  # 80 columns: the number gives way, so the notes keep whole words
    table = Table(title="demo summary", box=None)
    for name, width in (("message", 8), ("to", 12), ("scenario", 13), ("final status", 13)):
        if not (narrow and name == "to"):
            table.add_column(name, min_width=width, no_wrap=True)  # status words are never cut
    table.add_column("events as received", min_width=13)
    table.add_column("notes", min_width=12, overflow="fold")
    counters = result.listener
    for message in result.messages:
        style = STATUS_STYLE.get(message.status, "magenta")
        received = " → ".join(e.status for e in message.events)
        notes = [_plural(message.duplicates, "duplicate") + " absorbed"] if message.duplicates else []
        notes += sorted({f"{e.status} arrived {e.anomaly}" for e in message.events if e.anomaly})
        notes += [f"error {e.error_code}" for e in message.events if e.error_code]
        notes += (
            ["webhook lost; from the Reports API"]
            if any(e.source == "reports" for e in message.events)
            else []
        )
        scenario = SCENARIOS.get(message.to or "", DEFAULT_SCENARIO).name
        number = [] if narrow else [f"+{message.to}"]
        table.add_row(message.message_uuid[:8], *number, scenario,
                      Text(message.status + ("" if message.final else " (not final)"), style),
                      received, "; ".join(notes))  # fmt: skip
    print_data(table, rows=len(result.messages), pager=False)
    rejected = ", ".join(f"{reason} {n}" for reason, n in counters["rejected"].items()) or "none"
    out().print(f"listener: {counters['accepted']} events stored, {_plural(counters['duplicates'], 'duplicate')} absorbed, "
                f"rejected: {rejected} (an unsigned callback gets 503, so it comes back signed)")  # fmt: skip
    if result.inbound is not None:
        out().print(f"inbound: {result.inbound.text!r} from +{result.inbound.from_}, stored and forwarded")
    if result.refused_after_stop:
        out().print(f"opt-out: the next send was refused before any request: {result.refused_after_stop}")
    out().print(f"your app (a small server the demo started): {_plural(result.app_received, 'forwarded webhook')}, "
                f"{result.app_verified} with a signature it verified, as Vonage's own would be")  # fmt: skip
    out().print("Run it for real: `smsctl init` writes a .env to fill in, then `smsctl listen` and "
                "`smsctl send +1… \"hi\" --wait`.", style="dim")  # fmt: skip


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
