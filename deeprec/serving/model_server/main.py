"""`deeprec-model-server`: parse the flags, start the server, serve until SIGINT/SIGTERM."""

from __future__ import annotations

import logging
import signal
import sys
import threading

from deeprec.serving.model_server.flags import parse_args

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Runs the server until interrupted; returns the exit status (1 if it cannot start)."""
    options = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                                                   "%(message)s")
    from deeprec.serving.model_server.server import ModelServer  # imports TensorFlow

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        server = ModelServer(options)
        server.start()
    except (ValueError, RuntimeError) as err:
        print(f"deeprec-model-server: {err}", file=sys.stderr)
        return 1
    # Scripts and tests read the ports from this line (port 0 picks free ones).
    print(f"deeprec-model-server: serving {server.manager.model_names} "
          f"grpc_port={server.grpc_port} rest_port={server.rest_port}", flush=True)
    stop.wait()
    server.stop()
    return 0
