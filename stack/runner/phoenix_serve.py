"""Run Arize Phoenix for the embedded stack (`make up TRACES=1`): UI and OTLP/HTTP on the topology address only.

The runner starts this file with the Python that has the `traces` extra installed (.venv-traces), with PHOENIX_HOST,
PHOENIX_PORT and PHOENIX_WORKING_DIR set and telemetry, external resources and the AI assistant switched off.
Phoenix always opens an OTLP/gRPC receiver on every network interface ([::]:4317) and has no setting to bind it to
127.0.0.1; the stack exports over HTTP only, so this launcher switches the gRPC receiver off before starting
`phoenix serve`. Only Phoenix and grpc are imported here: the file runs outside the course's virtualenv.
"""

from __future__ import annotations

import sys

from phoenix.server import grpc_server

_original_init = grpc_server.GrpcServer.__init__


def _init_without_grpc(self, *args, **kwargs) -> None:  # noqa: ANN001, ANN002, ANN003 (Phoenix's signature)
    kwargs["disabled"] = True
    _original_init(self, *args, **kwargs)


grpc_server.GrpcServer.__init__ = _init_without_grpc

if __name__ == "__main__":
    from phoenix.server.main import main

    sys.argv = ["phoenix", "serve"]
    main()
