"""The embedded (no-Docker) runner: starts the stack as local processes bound to 127.0.0.1."""
