"""The send side: credentials (`auth`), the Messages API client (`client`), numbers and encoding
(`numbers`), one send (`sending`), a batch (`bulk`, `recipients`), pacing (`ratelimit`), waiting for a
final status (`waiting`) and the runtime object that wires one command's parts (`runtime`).

Others may use: `sending`, `bulk`, `waiting`, `runtime`, `numbers`, `auth`. Nothing is imported here,
so importing the package costs nothing (start-up stays lazy)."""
