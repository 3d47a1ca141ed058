"""`smsctl send`: send one SMS and print its message UUID, or wait for its final status."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from smsctl.cli.options import DebugOption, JsonOption, NoStoreTextOption, sender_settings
from smsctl.encoding import EncodingChoice


def send(
    to: Annotated[str, typer.Argument(help="Recipient in E.164 form, e.g. +14155550101.")],
    text: Annotated[
        str,
        typer.Argument(help="The message text (at most 3,200 characters); - reads it from standard input."),
    ],
    sender: Annotated[
        str | None, typer.Option("--from", help="Sender number or alphanumeric ID [env VONAGE_NUMBER].")
    ] = None,
    client_ref: Annotated[
        str | None, typer.Option(help="Your reference, echoed in every status (≤ 100 chars).")
    ] = None,
    webhook_url: Annotated[
        str | None,
        typer.Option(help="Status webhook URL for this message [default: BASE_URL/webhooks/status]."),
    ] = None,
    ttl: Annotated[
        int | None, typer.Option(min=20, max=604800, help="Seconds to keep trying delivery.")
    ] = None,
    encoding: Annotated[
        EncodingChoice, typer.Option(help="auto, text (GSM-7) or unicode (UCS-2).")
    ] = EncodingChoice.AUTO,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for the final status: exit 0 delivered, 1 failed, 6 timeout.")
    ] = False,
    timeout: Annotated[
        float, typer.Option(min=0.1, max=72 * 3600, help="With --wait: seconds to wait for a final status.")
    ] = 300.0,
    port: Annotated[
        int | None,
        typer.Option(min=0, max=65535, help="With --wait: port of the embedded listener [env PORT]."),
    ] = None,
    public_url: Annotated[
        str | None, typer.Option(help="With --wait: public URL of the listener [env BASE_URL, else ngrok's].")
    ] = None,
    ignore_optout: Annotated[
        bool,
        typer.Option(
            "--ignore-optout",
            help="Send even though the recipient opted out: only for a documented "
            "transactional exception (recorded on the message).",
        ),
    ] = False,
    no_store_text: NoStoreTextOption = False,
    json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Send an SMS through the Messages API and print its message UUID.

    With --wait, block until the message is delivered (exit 0), rejected or undeliverable (exit 1),
    or --timeout passes (exit 6). Statuses come from a running `smsctl listen`, or from a listener
    started for the wait.

    Example: smsctl send +14155550101 "Your code is 123456" --wait
    """
    from smsctl.output import reporting

    with reporting(json_output, debug):
        from smsctl.messages.sending import SendRequest, preflight, prepare, send_one

        settings = sender_settings(sender, port, public_url, no_store_text)
        request = SendRequest(to, _text(text), sender, client_ref, webhook_url, ttl, encoding, ignore_optout)
        prepare(
            request, settings, check_sender=False
        )  # bad input: refused before the HTTP client is imported
        preflight(settings, sender, wait=wait)  # then every missing setting at once
        from smsctl import running

        with _uuid_on_stdout_when_not_recorded(json_output):
            if not wait:
                result, cost = running.run(send_one(settings, request))
                _render(result.to_dict(), cost.segments, json_output)
                return
            _send_and_wait(settings, request, timeout, port, public_url, json_output)


def _text(text: str) -> str:
    """The text argument, or standard input for `-` (so a one-time code never shows in `ps`)."""
    if text != "-":
        return text
    data = sys.stdin.read()
    return data[:-1] if data.endswith("\n") else data


@contextmanager
def _uuid_on_stdout_when_not_recorded(json_output: bool) -> Iterator[None]:
    """A message the API accepted is reported as sent on stdout, even if the store could not record it."""
    from smsctl.errors import SentNotRecorded
    from smsctl.output import emit_json, out

    try:
        yield
    except SentNotRecorded as exc:
        if json_output:
            emit_json({"message_uuid": exc.message_uuid, "status": "accepted", "recorded": False})
        else:
            out().print(exc.message_uuid)
        raise


def _render(result: dict[str, Any], segments: int, json_output: bool) -> None:
    from smsctl.output import emit_json, note, out, warn

    if segments > 1:
        warn(f"the text bills as {segments} SMS segments")
    if result["repeated_uuid"]:
        warn(f"the API answered with message_uuid {result['message_uuid']}, which an earlier send has too "
             "(a mock API, or a replayed answer?): both sends are kept; `smsctl status` shows them")  # fmt: skip
    if json_output:
        emit_json(result)
        return
    out().print(result["message_uuid"])
    note(
        f"accepted: to {result['to']}, {segments} segment(s) {result['encoding']}, client_ref {result['client_ref']}"
    )


def _send_and_wait(settings: Any, request: Any, timeout: float, port: int | None, public_url: str | None,
                   json_output: bool) -> None:  # fmt: skip
    from smsctl import running
    from smsctl.messages.waiting import WaitOptions, outcome_error, send_and_wait
    from smsctl.output import emit_json, out

    with WaitDisplay() as display, display.uuid_on_interrupt(json_output):
        result = running.run(
            send_and_wait(settings, request, WaitOptions(timeout, port, public_url), display.update)
        )
    if json_output:
        emit_json(result.to_dict())
    else:
        out().print(f"{result.sent.message_uuid} {result.status}")
        if result.answered_by == "reports":
            from smsctl.output import note

            note(f"no status webhook arrived within {timeout:g} s: the final status is the Reports API's")
    error = outcome_error(result)
    if error is not None:
        raise error


class WaitDisplay:
    """The live state on stderr: a spinner with the transitions on a terminal, plain lines otherwise."""

    def __init__(self) -> None:
        from smsctl.output import err

        self.console = err()
        self.tty = sys.stderr.isatty()
        self._status: Any = None
        self._printed = 0
        self._last: Any = ""
        self._listener_alive = True
        self._progress: Any = None
        self._ticking: _Ticking | None = None

    def __enter__(self) -> WaitDisplay:
        if self.tty:
            self._status = self.console.status("sending…")
            self._status.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop_spinner()

    def _stop_spinner(self) -> None:
        """Stop the spinner (once) and leave its last line, with the elapsed time as it is now."""
        if self._status is None:
            return
        self._status.__exit__(None, None, None)
        self._status = None
        last = self._ticking.__rich__() if self._ticking is not None else self._last
        if last:
            self.console.print(last, highlight=False, soft_wrap=True)

    @contextmanager
    def uuid_on_interrupt(self, json_output: bool) -> Iterator[None]:
        """Ctrl-C or SIGTERM while waiting: the message was sent, so its UUID is printed (data, on
        stdout) with how to check it later, instead of being lost with the wait."""
        from smsctl.errors import Terminated
        from smsctl.output import emit_json, note, out

        try:
            yield
        except (KeyboardInterrupt, Terminated):
            self._stop_spinner()
            progress = self._progress
            if progress is not None and progress.sent.message_uuid:
                uuid = progress.sent.message_uuid
                status = progress.events[-1].status if progress.events else "accepted"
                if json_output:
                    emit_json({"message_uuid": uuid, "status": status, "final": False, "interrupted": True})
                else:
                    out().print(f"{uuid} {status}")
                note(f"stopped waiting; the message was sent. Check it later with `smsctl status {uuid}`")
            raise

    def update(self, progress: Any) -> None:
        from rich.text import Text

        from smsctl.output import warn
        from smsctl.webhooks.view import STATUS_STYLE

        if progress.listener_alive != self._listener_alive:
            self._listener_alive = progress.listener_alive
            if progress.listener_alive:
                warn("smsctl listen is back; still waiting")
            else:
                warn("smsctl listen has stopped (no heartbeat): statuses will be stored when it is back, "
                     "since Vonage retries for 24 h; still waiting")  # fmt: skip

        self._progress = progress
        if not progress.events:
            line = Text(f"accepted {progress.sent.message_uuid}; waiting for statuses via {progress.source}")
        else:
            line = Text(" → ").join(
                Text(e.status, STATUS_STYLE.get(e.status, "magenta")) for e in progress.events
            )
        self._last = line.copy()
        if progress.events:
            self._last.append(f"  ({progress.elapsed:.1f} s)")
        if self._status is not None:
            self._ticking = _Ticking(line, progress.elapsed) if progress.events else None
            self._status.update(self._ticking or line)
        else:
            for event in progress.events[max(self._printed, 0) :]:
                self.console.print(f"{event.status} {event.timestamp}", highlight=False)
            if not progress.events and not self._printed:
                self.console.print(line, highlight=False, soft_wrap=True)
            self._printed = len(progress.events) or -1


class _Ticking:
    """A status line whose elapsed time moves at every refresh of the spinner, not only when an event
    arrives (a wait of minutes showed `(0.2 s)` until the next status)."""

    def __init__(self, line: Any, elapsed: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.line, self.elapsed, self.clock = line, elapsed, clock
        self.since = clock()

    def __rich__(self) -> Any:
        return self.line + f"  ({self.elapsed + self.clock() - self.since:.1f} s)"
