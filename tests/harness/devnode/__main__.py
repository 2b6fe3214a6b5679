"""Run the development node in the foreground until SIGINT or SIGTERM.

    python -m tests.harness.devnode --kubeconfig K --root DIR [--node-name N]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from tests.harness.devnode.agent import DEFAULT_NODE_NAME, NodeAgent


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.harness.devnode",
        description="Run Modelship's development node (a test harness) for a local control plane.",
    )
    parser.add_argument("--kubeconfig", required=True, type=Path)
    parser.add_argument("--root", required=True, type=Path,
                        help="folder for pod sandboxes, logs and claim data")
    parser.add_argument("--node-name", default=DEFAULT_NODE_NAME)
    parser.add_argument("--verbose", action="store_true")
    return parser


async def run(args: argparse.Namespace) -> None:
    agent = NodeAgent(args.kubeconfig, args.root, node_name=args.node_name)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await agent.start()
        await stop.wait()
    finally:
        await agent.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
