"""Container health check: exit 0 only when the server's gRPC health says SERVING.

Docker's HEALTHCHECK (deploy/Dockerfile) and compose run this inside the container; it
stands in for grpc_health_probe, a separate binary we do not ship. Kubernetes does not
use it: its native gRPC probes (deploy/k8s/deployment.yaml) ask the same Health service.

The server reports NOT_SERVING while PostgreSQL is unreachable and while it drains after
SIGTERM, so "healthy" here means "able to take traffic".

Usage: python healthcheck.py [ADDRESS [SERVICE]]
    ADDRESS defaults to 127.0.0.1:50051; SERVICE to "" (the whole server).
"""

from __future__ import annotations

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

DEFAULT_ADDRESS = "127.0.0.1:50051"
TIMEOUT_S = 3.0


def check(address: str, service: str) -> int:
    """Asks grpc.health.v1.Health/Check once; returns the process exit code."""
    request = health_pb2.HealthCheckRequest(service=service)
    try:
        with grpc.insecure_channel(address) as channel:
            response = health_pb2_grpc.HealthStub(channel).Check(request, timeout=TIMEOUT_S)
    except grpc.RpcError as error:
        print(f"unhealthy: {address} answered {error.code().name}", file=sys.stderr)
        return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    if response.status != health_pb2.HealthCheckResponse.SERVING:
        print(f"unhealthy: {address} is {status}", file=sys.stderr)
        return 1
    print(status)
    return 0


def main(argv: list[str]) -> int:
    """Parses the optional address and service name and runs one check."""
    address = argv[1] if len(argv) > 1 else DEFAULT_ADDRESS
    service = argv[2] if len(argv) > 2 else ""
    return check(address, service)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
