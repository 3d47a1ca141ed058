"""The send side: credentials (`auth`), the Messages API client (`client`), phone numbers and sender IDs
(`numbers`), one send (`sending`), a batch (`bulk`, `recipients`), pacing (`ratelimit`), waiting for a
final status (`waiting`) and the runtime object that wires one command's parts (`runtime`).

Others may use: `sending`, `bulk`, `waiting`, `runtime`, `numbers`, `auth`. Nothing is imported here,
so importing the package costs nothing (start-up stays lazy).

The send side may use the receive side (`waiting` embeds a listener), never the reverse."""
