"""One `labelgate label` run in a process of its own, for the labeling section: the command's own
handler (the light client's, no torch), timed from inside, so that the time leaves out the
interpreter's start and the imports; then one JSON line on stdout with the seconds, the exit status
and the process's peak RSS (the whole process: imports, labeling and export).

    python -m labelgate.bench.labeling_job label SOURCE --ontology FILE --out DIR --server ADDRESS ...
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from labelgate.bench.rss import peak_rss_bytes
from labelgate.client.labeling.commands import add_labeling_commands


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="labelgate")
    add_labeling_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    status = args.func(args)
    seconds = time.perf_counter() - started
    sys.stdout.flush()
    print(json.dumps({"seconds": seconds, "status": status, "peak_rss": peak_rss_bytes(os.getpid())}))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
