"""A stand-alone OTLP collector for tests: ``python -m tests.integration.otlp_sink``.

Runs the project's own receiver (HTTP and gRPC on free ports of 127.0.0.1) in a
process of its own, so a test exports over the wire to another process as it
would to a real collector.  Prints one JSON line ``{"http": URL, "grpc": URL}``,
then, when stdin closes, one JSON line per received span and exits.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict

from clnrm.otel.receiver import OtlpReceiver


def main() -> None:
    from clnrm.logs import configure

    configure(0)  # logs on stderr: stdout is this process's answer
    with OtlpReceiver("127.0.0.1") as receiver:
        print(json.dumps({"http": receiver.http_endpoint, "grpc": receiver.grpc_endpoint}),
              flush=True)
        sys.stdin.read()  # until the test closes our stdin
        spans = receiver.spans()
    for span in spans:
        print(json.dumps(asdict(span), default=str), flush=True)


if __name__ == "__main__":
    main()
