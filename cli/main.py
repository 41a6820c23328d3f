"""The `labelgate` command: serve, client commands (segment, detect, models) and weights."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from labelgate.server.settings import Settings, add_serve_arguments, normalize_args


def _serve(args: argparse.Namespace) -> int:
    from labelgate.server.app import App

    try:
        settings = Settings.from_args(normalize_args(args)).validate()
    except ValueError as error:
        print(f"labelgate serve: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # serving never downloads: `labelgate weights fetch` does
    try:
        asyncio.run(App(settings).run())
    except (OSError, ValueError) as error:
        logging.getLogger("labelgate").error("cannot start: %s", error)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    from labelgate.client.cli import add_client_commands
    from labelgate.bench.cli import add_parser as add_bench_parser
    from labelgate.models.export.cli import add_parser as add_export_parser
    from labelgate.models.weights_cli import add_parser as add_weights_parser

    parser = argparse.ArgumentParser(
        prog="labelgate",
        description="Model-assisted labeling over gRPC: SAM 2 masks from clicks and boxes, Grounding DINO boxes from text.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the gRPC service",
        description="Run the labelgate gRPC service. Every flag can also be set as a LABELGATE_* environment variable.",
    )
    add_serve_arguments(serve)
    serve.set_defaults(func=_serve)
    add_client_commands(commands)
    add_weights_parser(commands)
    add_export_parser(commands)
    add_bench_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
