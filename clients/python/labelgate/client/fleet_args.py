"""The server flags of the commands that talk to one server or a fleet (`--server`, repeatable or
comma-separated, and `--servers-dns` where a command has it), and what an RPC error says to a
person at the command line."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable

from labelgate.client.affinity import AffinityClient, endpoints_from_dns
from labelgate.client.client import DEFAULT_TARGET
from labelgate.client.errors import LabelgateClientError
from labelgate.client.transport import SERVER_ENV, options_from_env


def fleet_client(args: argparse.Namespace) -> AffinityClient:
    """One client over every endpoint given (each image or clip sticks to one of them); none given:
    $LABELGATE_SERVER or the default."""
    endpoints = [part.strip() for value in args.server for part in value.split(",") if part.strip()]
    if getattr(args, "servers_dns", None):
        endpoints += endpoints_from_dns(args.servers_dns)
    options = options_from_env()
    endpoints = endpoints or [options.pop("target")]
    options.pop("target", None)
    return AffinityClient(endpoints, **options, timeout=args.timeout)


def rpc_message(error: LabelgateClientError, args: argparse.Namespace) -> str:
    if error.unreachable:
        where = ", ".join(args.server) or os.environ.get(SERVER_ENV) or DEFAULT_TARGET
        return (f"cannot reach a labelgate server at {where} ({error.details}); start one (`labelgate serve`) "
                f"or point --server at it")
    return f"{error.code.name}: {error.details}"


def run_command(body: Callable[[], int], args: argparse.Namespace, usage_errors: tuple[type[Exception], ...] = (ValueError, OSError),
                failures: tuple[type[Exception], ...] = ()) -> int:
    """`body()`'s exit status. What goes wrong becomes one `error: ...` line on stderr: a bad argument
    or file (`usage_errors`) exits 2, a failed RPC or one of `failures` exits 1."""
    try:
        return body()
    except usage_errors as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except failures as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except LabelgateClientError as error:
        print(f"error: {rpc_message(error, args)}", file=sys.stderr)
        return 1
