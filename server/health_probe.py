"""`python -m labelgate.server.health_probe`: exit 0 when the server reports SERVING over the gRPC
health protocol (grpc.health.v1), 1 otherwise. For Docker HEALTHCHECK; Kubernetes has its own
`grpc:` probe. Health stays open under --auth-token, so the probe needs no token.

    python -m labelgate.server.health_probe [--address 127.0.0.1:50051] [--service NAME] [--tls-ca FILE]

The address defaults to 127.0.0.1 and $LABELGATE_PORT (50051).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def check(address: str, service: str = "", timeout: float = 3.0, tls_ca: str = "") -> str:
    """The serving status name (SERVING, NOT_SERVING, ...), or the gRPC error code's name."""
    if tls_ca:
        channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(Path(tls_ca).read_bytes()))
    else:
        channel = grpc.insecure_channel(address)
    with channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as error:
            return error.code().name
    return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labelgate.server.health_probe", description=__doc__.split("\n\n")[0])
    parser.add_argument("--address", default=f"127.0.0.1:{os.environ.get('LABELGATE_PORT') or 50051}")
    parser.add_argument("--service", default="", help="'' = the whole server (default), or labelgate.v1.Labelgate")
    parser.add_argument("--timeout", type=float, default=3.0)
    parser.add_argument("--tls-ca", default="", help="PEM CA bundle: talk TLS, trusting this CA")
    args = parser.parse_args(argv)
    status = check(args.address, args.service, args.timeout, args.tls_ca)
    print(f"{args.address}: {status}")
    return 0 if status == "SERVING" else 1


if __name__ == "__main__":
    sys.exit(main())
