"""The receive side: webhook verification (`signing`), Vonage-shaped bodies (`bodies`), the server
(`server`) and the listener around it (`listening`), forwarding (`forwarding`, `outbox`), the tunnel
check (`tunnel`), `/metrics` (`metrics`), the live view (`view`), `trigger` and `replay`
(`triggering`, `replaying`) and the Application API (`application`, for `--update-app`).

It never imports the send side (`messages/`), which sits above it. Nothing is imported here, so importing the package costs nothing (start-up stays lazy)."""
