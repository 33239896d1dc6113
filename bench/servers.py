"""Throw-away servers on free loopback ports for the throughput benchmark (not the stack's own ports)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from stack.paths import REPO_ROOT

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@contextmanager
def uvicorn_app(app_path: str, env: dict[str, str], log: Path, ready_path: str = "/health") -> Iterator[str]:
    """Run `app_path` in its own uvicorn process (one worker, as the stack does); yield its base URL."""
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", app_path, "--host", HOST, "--port", str(port), "--no-access-log",
            "--log-level", "warning"]
    with log.open("w") as out:
        process = subprocess.Popen(argv, cwd=REPO_ROOT, env={**os.environ, **env}, stdout=out,
                                   stderr=subprocess.STDOUT)
    url = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + ready_path, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{app_path} did not start; see {log}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
