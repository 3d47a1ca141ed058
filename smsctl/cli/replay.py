"""`smsctl replay`: resend stored status events to a URL, in their original order."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from smsctl.cli.options import DebugOption, JsonOption, status_choice

if TYPE_CHECKING:
    from smsctl.webhooks.replaying import ReplaySummary


def replay(
    messages: Annotated[
        list[str] | None, typer.Argument(help="Message UUIDs (or 8+ leading characters).")
    ] = None,
    url: Annotated[
        str, typer.Option(help="Where to send them, e.g. http://localhost:8080/webhooks/status.")
    ] = "",
    since: Annotated[str | None, typer.Option(help="Messages active in the last 15m, 2h, 7d…")] = None,
    status: Annotated[str | None, typer.Option(help="Messages in this status (e.g. rejected).")] = None,
    batch: Annotated[str | None, typer.Option(help="Messages of this bulk batch.")] = None,
    original_token: Annotated[
        bool, typer.Option(help="Send each event's original token instead of signing it afresh.")
    ] = False,
    json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Resend the stored status events of some messages to --url, in the order they arrived.

    Each event's exact body is sent, signed afresh with the signature secret (or with its original
    token). Exits 5 when any answer is not 2xx.

    Example: smsctl replay --status rejected --since 1d --url http://localhost:8080/webhooks/status
    """
    import asyncio
    import time

    from smsctl.config import load_settings
    from smsctl.errors import UsageError
    from smsctl.history.reading import parse_duration
    from smsctl.output import emit_json, note, reporting
    from smsctl.webhooks.replaying import chosen_events
    from smsctl.webhooks.replaying import replay as run_replay
    from smsctl.webhooks.triggering import EndpointFailed

    with reporting(json_output, debug):
        if not url:
            raise UsageError("--url is required: where should the events go?",
                             hint="e.g. --url http://localhost:8080/webhooks/status")  # fmt: skip
        status = status_choice(status)
        settings = load_settings()
        after = time.time() - parse_duration(since) if since else None
        events = chosen_events(settings, messages or [], since=after, status=status, batch=batch)
        note(f"replaying {len(events)} event(s) to {url}")
        summary = asyncio.run(run_replay(settings, events, url, original_token=original_token,
                                         on_answer=lambda r: None if json_output else _line(r)))  # fmt: skip
        if json_output:
            emit_json(summary.to_json())
        else:
            _render(summary)
        if summary.failed:
            raise EndpointFailed(
                f"{len(summary.failed)} of {len(summary.replayed)} event(s) were not answered 2xx"
            )


def _line(replayed: object) -> None:
    from smsctl.output import out
    from smsctl.webhooks.replaying import Replayed

    assert isinstance(replayed, Replayed)
    answer = replayed.answer
    shown = str(answer.http_status) if answer.http_status is not None else "no answer"
    token = "original token" if replayed.original_token else "signed afresh"
    out().print(f"{shown:>9} {answer.ms:6.0f} ms  {replayed.event.message_uuid}  {replayed.event.status:<13} {token}",
                highlight=False)  # fmt: skip


def _render(summary: ReplaySummary) -> None:
    from smsctl.output import note

    answers = ", ".join(f"{code} ×{count}" for code, count in sorted(summary.answers.items()))
    note(f"{len(summary.replayed)} event(s) replayed to {summary.url}: {answers or 'nothing to send'}")
