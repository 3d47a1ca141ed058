"""The receive side: webhook verification (`signing`), event parsing (`events`), the server
(`server`) and the listener around it (`listening`), forwarding (`forwarding`, `outbox`), the tunnel
check (`tunnel`), `/metrics` (`metrics`), the live view (`view`), `trigger` and `replay`
(`triggering`, `replaying`) and the Application API (`application`, for `--update-app`).

Nothing is imported here, so importing the package costs nothing (start-up stays lazy)."""
