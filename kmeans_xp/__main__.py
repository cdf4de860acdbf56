"""Command line: ``kmeans-xp demo`` (also ``python -m kmeans_xp demo``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="kmeans-xp", description="K-Means on NumPy, CuPy and PyTorch arrays."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="fit the tutorial's three-blob data, print the result, write clusters.png and "
        "elbow.png",
    )
    demo.add_argument("--out", type=Path, default=Path("."), help="folder for the PNG files")
    demo.add_argument("--no-plot", action="store_true", help="print only, write no PNG files")
    demo.add_argument("--seed", type=int, default=0, help="random_state of the fits")
    args = parser.parse_args(argv)

    if args.command == "demo":
        from ._demo import run_demo

        run_demo(args.out, plot=not args.no_plot, random_state=args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
