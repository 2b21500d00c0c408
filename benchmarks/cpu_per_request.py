"""CPU per request: where a CPU-bound tracking server's throughput goes, role against defaults.

    python -m benchmarks cpu_per_request [--backend postgresql|mysql] [--concurrency C]
                                         [--seconds S] [--rounds R] [--batch-size B]
                                         [--operation log-batch|log-metric]
                                         [--role-var mlflow_server_NAME=VALUE] [--configs role,defaults]
                                         [--variant-var mlflow_server_NAME=VALUE]

On a machine whose cores are all busy, a server's throughput is the cores over the CPU one
request costs the machine (the server's processes, the database's, the clients'), so a lower
request rate is either more CPU per request or idle cores. This benchmark measures both, with the
servers and databases of ``tracking_server`` (the same helpers): each round starts every
configuration afresh on its own fresh database (alternating, so the machine's drift falls on
all), waits until it is idle, warms it up, then measures S seconds of back-to-back calls of
the operation (log-batch by default, or log-metric) from C client threads and prints
requests/s, the CPU milliseconds per request of the server's process tree
(``/proc/<pid>/stat``), of the client threads (this process) and of the whole machine
(``/proc/stat``, everything but idle and iowait), how busy the machine's cores were, and the
load average. The clients' share tells whether the server is what limits the rate: the client
threads are one Python process, which runs Python on one core at a time. One ``--role-var``
set applies to the role's server; ``--variant-var`` adds a third configuration, ``variant``: the
role's server with those variables on top, measured in the same alternating rounds, so two role
settings are compared side by side (``--configs role --variant-var ...`` for just the two).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time

from benchmarks import tracking_server as ts

WARMUP_SECONDS = 3.0


def measure(config: str, args: argparse.Namespace) -> dict[str, float]:
    """One configuration, started on a fresh database: req/s and CPU milliseconds per request."""
    overrides = {"role": args.role_vars, "variant": {**args.role_vars, **args.variant_vars}}.get(config)
    with contextlib.ExitStack() as stack:
        env = stack.enter_context(ts.database_server(args.backend, args.max_connections))
        uri = stack.enter_context(ts.fresh_database(args.backend, env))
        server = stack.enter_context(
            ts.running_server(
                "defaults" if config == "defaults" else "role", args.backend, uri, args.max_connections, overrides
            )
        )
        ts.settle(server.proc.pid)
        runs = ts.setup_runs(server.url, args.concurrency)
        ts.workload(server, args.operation, runs, 0, WARMUP_SECONDS, args.concurrency, args.batch_size)
        before = ts.cpu_seconds(server.proc.pid), time.process_time(), ts.machine_busy_seconds(), time.perf_counter()
        sample = ts.workload(server, args.operation, runs, 0, args.seconds, args.concurrency, args.batch_size)
        after = ts.cpu_seconds(server.proc.pid), time.process_time(), ts.machine_busy_seconds(), time.perf_counter()
    server_s, client_s, machine_s, wall = (end - start for start, end in zip(before, after, strict=True))
    done = max(sample.completed, 1)
    return {
        "rps": sample.completed / args.seconds,
        "server_ms": 1000 * server_s / done,
        "client_ms": 1000 * client_s / done,
        "machine_ms": 1000 * machine_s / done,
        "busy": machine_s / (wall * (os.cpu_count() or 1)),
        "errors": len(sample.errors),
        "load": os.getloadavg()[0],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks cpu_per_request", description=__doc__.split("\n", maxsplit=1)[0]
    )
    parser.add_argument("--backend", choices=ts.BACKENDS, default="postgresql", help="database (default postgresql)")
    parser.add_argument(
        "--operation",
        choices=("log-batch", "log-metric"),
        default="log-batch",
        help="what the clients call (default log-batch)",
    )
    parser.add_argument("--concurrency", type=int, default=8, help="client threads (default 8)")
    parser.add_argument("--seconds", type=float, default=15, help="measuring window per round (default 15)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (default 2)")
    parser.add_argument("--batch-size", type=int, default=1000, help="metrics per log-batch request (default 1000)")
    ts.add_server_arguments(parser)
    parser.add_argument(
        "--variant-var",
        type=ts.role_var,
        action="append",
        default=[],
        metavar="mlflow_server_NAME=VALUE",
        help="a role variable for a third configuration, 'variant', the role's server with it (repeatable)",
    )
    args = parser.parse_args(argv)
    if args.concurrency < 1 or args.seconds <= 0 or args.rounds < 1:
        parser.error("--concurrency and --rounds must be >= 1 and --seconds > 0")
    args.role_vars = dict(args.role_var)
    args.variant_vars = dict(args.variant_var)
    if args.variant_vars:
        args.configs = [*args.configs, "variant"]
    args.max_connections = args.max_connections or ts.database_role_max_connections()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    what = f"log-batch of {args.batch_size}" if args.operation == "log-batch" else "log-metric"
    print(f"{args.backend}, {args.concurrency} clients, {what}, {args.seconds:g} s a round")
    print("round  config    req/s  server ms/req  clients ms/req  machine ms/req  cores busy  errors  load")
    for number in range(1, args.rounds + 1):
        order = args.configs if number % 2 else list(reversed(args.configs))
        for config in order:
            row = measure(config, args)
            print(
                f"{number:>5}  {config:<8} {row['rps']:>6.2f}  {row['server_ms']:>13.1f}  {row['client_ms']:>14.1f}"
                f"  {row['machine_ms']:>14.1f}  {row['busy']:>9.0%}  {row['errors']:>6}  {row['load']:>4.1f}",
                flush=True,
            )
    return 0
