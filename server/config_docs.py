"""docs/configuration.md, rendered from the settings (`make docs`): one row per Settings field with
its flag, environment variable, default and help, so the page cannot drift from `labelgate serve`.

    python -m labelgate.server.config_docs docs/configuration.md   # write the page
    python -m labelgate.server.config_docs                         # print it
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, fields
from pathlib import Path

from labelgate.server.settings import _HELP, GiB, MiB, Settings, _flag

HEADER = """\
# Configuration

<!-- Generated from server/settings.py by `make docs` (python -m labelgate.server.config_docs). Do not edit:
     tests/unit/test_config_docs.py fails when this page differs from what the settings give. -->

Every flag of `labelgate serve` can also be set as an environment variable; a flag wins over the
variable. A repeatable flag takes a space-separated list in its variable, and an on/off flag takes
`true` or `false` (also `1`/`0`, `yes`/`no`, `on`/`off`). Invalid values stop the server at start
with a message naming the flag. `labelgate serve --help` prints the same list.

Where the settings matter: `--redis-*`, `--cache-bytes` and the batching knobs in
[operations.md](operations.md), `--backend triton` in [triton.md](triton.md),
`--heavy-stage-priority` and `--max-batch-delay-ms` in [performance.md](performance.md), the limits
and the status codes they give in [api.md](api.md#errors).

| Flag | Environment | Default | Meaning |
|---|---|---|---|
"""


@dataclass(frozen=True)
class SettingDoc:
    flags: tuple[str, ...]  # the on/off flags have two: --warmup / --no-warmup
    env: str
    default: str  # Markdown, as the page shows it
    help: str
    repeatable: bool  # the variable then takes a space-separated list


def setting_docs() -> list[SettingDoc]:
    """One entry per Settings field, in the order `labelgate serve --help` lists them."""
    docs = []
    for spec in fields(Settings):
        flag = "--" + _flag(spec.name)
        flags = (flag, "--no-" + _flag(spec.name)) if isinstance(spec.default, bool) else (flag,)
        docs.append(SettingDoc(flags, "LABELGATE_" + spec.name.upper(), _shown_default(spec.name, spec.default),
                               _HELP[spec.name], isinstance(spec.default, tuple)))
    return docs


def _shown_default(name: str, default) -> str:
    if isinstance(default, bool):
        return "on" if default else "off"
    if default in ("", ()):
        return "none"
    if name.endswith("_bytes"):
        for unit, size in (("GiB", GiB), ("MiB", MiB)):
            if default % size == 0:
                return f"`{default}` ({default // size} {unit})"
    return f"`{default}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render() -> str:
    rows = []
    for doc in setting_docs():
        flags = " / ".join(f"`{flag}`" for flag in doc.flags)
        env = f"`{doc.env}`" + (" (space-separated)" if doc.repeatable else "")
        rows.append(f"| {flags} | {env} | {doc.default} | {_cell(doc.help)} |\n")
    return HEADER + "".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", nargs="?", type=Path, help="write the page here (default: print it)")
    args = parser.parse_args(argv)
    if args.out is None:
        sys.stdout.write(render())
    else:
        args.out.write_text(render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
