"""Run the benchmarks: `python -m benchmarks` runs all, `python -m benchmarks NAME [ARGS]` one.

A benchmark is a module of this package whose name does not start with `_` and which has
`main(argv) -> int`; `python -m benchmarks --list` names them.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def available() -> list[str]:
    here = Path(__file__).resolve().parent
    names = []
    for info in pkgutil.iter_modules([str(here)]):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"benchmarks.{info.name}")
        if callable(getattr(module, "main", None)):
            names.append(info.name)
    return sorted(names)


def main(argv: list[str]) -> int:
    names = available()
    if argv and argv[0] in ("-h", "--help", "--list"):
        print("benchmarks: " + ", ".join(names))
        print(__doc__)
        return 0
    if argv:
        name, rest = argv[0], argv[1:]
        if name not in names:
            print(f"unknown benchmark {name!r}; available: {', '.join(names)}", file=sys.stderr)
            return 2
        return importlib.import_module(f"benchmarks.{name}").main(rest)
    status = 0
    for name in names:
        print(f"== {name}", flush=True)
        status |= importlib.import_module(f"benchmarks.{name}").main([])
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
