"""The offline world: the Messages API emulator (`emulator`), its TLS helper (`tls`) and the demo
(`demo`). Nothing is imported here, so importing the package costs nothing."""
