"""The ``kmeans-xp`` command (also ``python -m kmeans_xp``): demo, fit, elbow, predict.

Bad input (a missing or empty file, a non-numeric column, NaN, K larger than the rows, a damaged
model file, a table whose header names other columns than the model's) prints one line,
``kmeans-xp: error: ...``, and exits with status 2; ``--debug`` shows the traceback instead. A
table's header is kept in the model file by ``fit`` and checked by ``predict``. ``--json``
prints exactly one JSON document on stdout; ``--quiet`` prints nothing but errors. Progress
bars go to stderr, and only on a terminal.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

EXIT_USAGE = 2  # bad input, as argparse uses for bad arguments
EXIT_BROKEN_PIPE = 141  # what a shell reports for a command ended by SIGPIPE (128 + 13)

_DESCRIPTION = """\
K-Means on NumPy, CuPy and PyTorch arrays.

  kmeans-xp demo                       the tutorial: three blobs, K=3, plots
  kmeans-xp fit data.csv -k 5          cluster a file; write labels, centers, model
  kmeans-xp elbow data.npy --k 1:12    inertia (and silhouette) for each K; suggest one
  kmeans-xp predict model.npz new.csv  label new rows with a saved model

INPUT files: .npy (2-D array) or .csv / .tsv with numeric columns (a header line is detected).
"""


# --------------------------------------------------------------------------------------------
# Argument parsing
# --------------------------------------------------------------------------------------------


def _k_range(text: str) -> list[int]:
    """'1:12' (inclusive), '2:20:2' (with a step) or '2,3,5,8'."""
    try:
        if ":" in text:
            parts = [int(p) for p in text.split(":")]
            if len(parts) not in (2, 3):
                raise ValueError
            start, stop = parts[0], parts[1]
            step = parts[2] if len(parts) == 3 else 1
            if step < 1:
                raise ValueError
            return list(range(start, stop + 1, step))
        return [int(p) for p in text.split(",")]
    except ValueError:
        msg = f"invalid K range {text!r}: use START:STOP (inclusive), START:STOP:STEP or 2,3,5"
        raise argparse.ArgumentTypeError(msg) from None


def _n_init(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        msg = f"invalid --n-init {text!r}: an integer or 'auto'"
        raise argparse.ArgumentTypeError(msg) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kmeans-xp",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from .._core.certified import MATMUL_PRECISIONS
    from .._lib.version import __version__

    parser.add_argument("--version", action="version", version=f"kmeans-xp {__version__}")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    output = common.add_mutually_exclusive_group()
    output.add_argument("--quiet", "-q", action="store_true", help="print nothing but errors")
    output.add_argument("--json", action="store_true", help="print one JSON document")

    compute = argparse.ArgumentParser(add_help=False)
    compute.add_argument(
        "--backend",
        choices=("auto", "numpy", "cupy", "torch"),
        default="auto",
        help="array library to compute with; auto uses a GPU when one is usable (default)",
    )
    compute.add_argument(
        "--init", choices=("k-means++", "k-means||", "random"), default="k-means++"
    )
    compute.add_argument(
        "--algorithm",
        choices=("auto", "lloyd", "hamerly"),
        default="auto",
        help="plain Lloyd passes, or Lloyd pruned by Hamerly's bounds (auto: bounds on a CPU)",
    )
    compute.add_argument(
        "--matmul-precision",
        choices=MATMUL_PRECISIONS,
        default="auto",
        help="GPU distance products: float32 (highest), TF32 tensor cores (high), or three TF32 "
        "products of split operands (tf32x3); auto: tf32x3 for float32 CuPy data on Ampere or "
        "later with k >= 256, else highest; labels are certified either way (default: auto)",
    )
    compute.add_argument(
        "--n-init",
        type=_n_init,
        default="auto",
        metavar="N",
        help="initialisations; the best is kept (default: auto)",
    )
    compute.add_argument("--max-iter", type=int, default=300, metavar="N")
    compute.add_argument("--tol", type=float, default=1e-4)
    compute.add_argument("--seed", type=int, default=0, help="random seed (default 0)")

    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        parents=[common],
        help="the tutorial end to end: fit, print, plot",
        description="Fit the tutorial's three-blob data with K=3, print the result and write "
        "clusters.png and elbow.png.",
    )
    demo.add_argument("--out", type=Path, default=Path("."), help="folder for the PNG files")
    demo.add_argument("--no-plot", action="store_true", help="print only, write no PNG files")
    demo.add_argument("--seed", type=int, default=0, help="random seed of the fits (default 0)")

    fit = commands.add_parser(
        "fit",
        parents=[common, compute],
        help="cluster INPUT into K clusters",
        description="Cluster the rows of INPUT. Writes labels.npy, centers.npy, model.npz and "
        "summary.json to --out (and clusters.png with --plot).",
    )
    fit.add_argument("input", type=Path, metavar="INPUT", help=".npy, .csv or .tsv")
    fit.add_argument("-k", "--n-clusters", type=int, required=True, metavar="K")
    fit.add_argument("--out", type=Path, default=Path("."), help="output folder (default: .)")
    fit.add_argument("--plot", action="store_true", help="also write clusters.png")

    elbow = commands.add_parser(
        "elbow",
        parents=[common, compute],
        help="inertia for a range of K; suggest one",
        description="Fit each K, print K, inertia (and silhouette) and the K at the knee of "
        "the inertia curve.",
    )
    elbow.add_argument("input", type=Path, metavar="INPUT", help=".npy, .csv or .tsv")
    elbow.add_argument(
        "--k",
        type=_k_range,
        default=list(range(1, 11)),
        metavar="RANGE",
        help="Ks: 1:12 (inclusive), 2:20:2 or 2,3,5 (default 1:10)",
    )
    elbow.add_argument("--silhouette", action="store_true", help="also the mean silhouette")
    elbow.add_argument(
        "--sample-size",
        type=int,
        default=None,
        metavar="N",
        help="silhouette on N random rows (it costs O(n^2))",
    )
    elbow.add_argument(
        "--plot", type=Path, default=None, metavar="PNG", help="write the elbow curve to this file"
    )

    predict = commands.add_parser(
        "predict",
        parents=[common],
        help="label INPUT with a saved model",
        description="Label each row of INPUT with the nearest center of MODEL (a file written "
        "by 'kmeans-xp fit' or KMeans.save). Without --out, prints one label per line.",
    )
    predict.add_argument("model", type=Path, metavar="MODEL", help="model .npz file")
    predict.add_argument("input", type=Path, metavar="INPUT", help=".npy, .csv or .tsv")
    predict.add_argument("--out", type=Path, default=None, help="labels file (.npy or .txt)")
    predict.add_argument(
        "--backend",
        choices=("auto", "numpy", "cupy", "torch"),
        default="auto",
        help="array library to compute with (default: auto)",
    )
    return parser


# --------------------------------------------------------------------------------------------
# Output helpers
# --------------------------------------------------------------------------------------------


class _Printer:
    def __init__(self, args: argparse.Namespace) -> None:
        self.quiet = args.quiet
        self.json = args.json

    def line(self, text: str = "") -> None:
        if not (self.quiet or self.json):
            print(text)

    def document(self, data: dict[str, Any]) -> None:
        if self.json:
            print(json.dumps(data, indent=2))


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"kmeans-xp: warning: {message}", file=sys.stderr)


def _cluster_table(centers: np.ndarray, sizes: np.ndarray) -> list[str]:
    d = centers.shape[1]
    shown = min(d, 4)
    head = "  ".join(f"{'x' + str(j):>10}" for j in range(shown)) + ("  ..." if d > shown else "")
    lines = [f"{'cluster':>7}  {'size':>8}  {head}"]
    for i, (center, size) in enumerate(zip(centers, sizes, strict=True)):
        coords = "  ".join(f"{v:10.4g}" for v in center[:shown])
        lines.append(f"{i:>7}  {int(size):>8}  {coords}")
    return lines


def _progress_bar(args: argparse.Namespace, total: int, label: str):
    from .progress import ProgressBar

    return ProgressBar(total, label, enabled=not (args.quiet or args.json))


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------


def _load_input(path: Path, backend: str) -> tuple[Any, np.ndarray, str, list[str] | None]:
    """X on the backend, X on the host, where it is, and a table's column names (or None)."""
    from .._lib.compat import to_backend
    from .datafile import read_matrix_and_header

    X_host, header = read_matrix_and_header(path)
    X, where = to_backend(X_host, backend)
    return X, X_host, where, header


def _command_demo(args: argparse.Namespace, out: _Printer) -> int:
    from .demo import run_demo

    result = run_demo(args.out, plot=not args.no_plot, random_state=args.seed, printer=out.line)
    out.document(result["summary"])
    return 0


def _command_fit(args: argparse.Namespace, out: _Printer) -> int:
    from .._estimators.kmeans import KMeans
    from .._lib.compat import to_numpy

    X, X_host, where, header = _load_input(args.input, args.backend)
    if args.n_clusters > X_host.shape[0]:
        msg = f"-k {args.n_clusters} is larger than the {X_host.shape[0]} rows of {args.input}."
        raise ValueError(msg)
    model = KMeans(
        n_clusters=args.n_clusters,
        init=args.init,
        n_init=args.n_init,
        max_iter=args.max_iter,
        tol=args.tol,
        random_state=args.seed,
        algorithm=args.algorithm,
        matmul_precision=args.matmul_precision,
    )
    auto_runs = 1 if args.init in ("k-means++", "k-means||") else 10  # n_init="auto" in KMeans
    runs = auto_runs if args.n_init == "auto" else max(1, args.n_init)
    bar = _progress_bar(args, runs * args.max_iter, "Lloyd iterations")

    def on_iteration(run: int, n_iter: int) -> None:
        bar.update(run * args.max_iter + n_iter, f"run {run + 1}/{runs}, iteration {n_iter}")

    start = time.perf_counter()
    with bar:
        model._fit_with_progress(X, None, on_iteration=on_iteration)
    seconds = time.perf_counter() - start

    centers = to_numpy(model.cluster_centers_)
    labels = to_numpy(model.labels_)
    sizes = np.bincount(labels, minlength=args.n_clusters)
    args.out.mkdir(parents=True, exist_ok=True)
    files = {
        "labels": args.out / "labels.npy",
        "centers": args.out / "centers.npy",
        "model": args.out / "model.npz",
        "summary": args.out / "summary.json",
    }
    np.save(files["labels"], labels)
    np.save(files["centers"], centers)
    if args.plot:
        from .plots import plot_clusters, save_figure

        files["plot"] = args.out / "clusters.png"
        save_figure(lambda ax: plot_clusters(X, model, ax=ax), files["plot"])
    if header is not None:  # kept in the model file; `predict` checks a table's header by them
        model._set_feature_names(np.asarray(header, dtype=object))
    model.save(files["model"])
    summary = {
        "input": str(args.input),
        "n_samples": int(X_host.shape[0]),
        "n_features": int(X_host.shape[1]),
        "n_clusters": args.n_clusters,
        "backend": where,
        "inertia": float(model.inertia_),
        "n_iter": int(model.n_iter_),
        "seconds": round(seconds, 4),
        "cluster_sizes": sizes.tolist(),
        "files": {name: str(path) for name, path in files.items()},
    }
    files["summary"].write_text(json.dumps(summary, indent=2) + "\n")
    out.document(summary)
    out.line(
        f"{args.input}: {X_host.shape[0]} rows x {X_host.shape[1]} features, K={args.n_clusters}"
        f", on {where}"
    )
    for text in _cluster_table(centers, sizes):
        out.line(text)
    out.line(f"inertia {model.inertia_:.6g}, {model.n_iter_} iterations, {seconds:.3f} s")
    out.line("wrote " + ", ".join(str(p) for p in files.values()))
    return 0


def _command_elbow(args: argparse.Namespace, out: _Printer) -> int:
    from .elbow import elbow_curve

    if args.sample_size is not None and not args.silhouette:
        msg = "--sample-size sets the silhouette's subsample; it needs --silhouette."
        raise ValueError(msg)
    X, X_host, where, _ = _load_input(args.input, args.backend)
    bar = _progress_bar(args, len(args.k), "fitting K")
    options = {
        "init": args.init,
        "n_init": args.n_init,
        "max_iter": args.max_iter,
        "tol": args.tol,
        "random_state": args.seed,
        "algorithm": args.algorithm,
        "matmul_precision": args.matmul_precision,
    }
    with bar:
        result = elbow_curve(
            X,
            args.k,
            silhouette=args.silhouette,
            silhouette_sample_size=args.sample_size,
            sample_weight=None,
            verbose=False,
            kmeans_options=options,
            on_k=lambda index, k: bar.update(index, f"fitting K={k}"),
        )
        bar.update(len(args.k), "done")
    summary = {"input": str(args.input), "backend": where, **result.as_dict()}
    if args.plot is not None:
        from .plots import plot_elbow, save_figure

        save_figure(lambda ax: plot_elbow(result, ax=ax), args.plot)
        summary["plot"] = str(args.plot)
    out.document(summary)
    out.line(f"{args.input}: {X_host.shape[0]} rows x {X_host.shape[1]} features, on {where}")
    header = f"{'K':>4}  {'inertia':>14}  {'seconds':>8}"
    out.line(header + (f"  {'silhouette':>10}" if args.silhouette else ""))
    for i, k in enumerate(result.ks):
        row = f"{k:>4}  {result.inertias[i]:>14.6g}  {result.fit_times[i]:>8.3f}"
        if args.silhouette:
            row += f"  {result.silhouettes[i]:>10.4f}"
        out.line(row)
    suggested = result.suggested_k
    out.line(f"suggested K: {suggested if suggested is not None else 'none (no knee found)'}")
    if args.plot is not None:
        out.line(f"wrote {args.plot}")
    return 0


def _command_predict(args: argparse.Namespace, out: _Printer) -> int:
    from .._lib.compat import to_numpy
    from .datafile import write_labels
    from .model_files import load

    X, X_host, where, header = _load_input(args.input, args.backend)
    model = load(args.model, like=X)
    if X_host.shape[1] != model.n_features_in_:
        msg = (
            f"{args.input} has {X_host.shape[1]} features, but the model in {args.model} was "
            f"fitted on {model.n_features_in_}."
        )
        raise ValueError(msg)
    names = getattr(model, "feature_names_in_", None)
    if names is not None and header is not None and header != list(names):
        msg = (
            f"{args.input}'s header names the columns {header}, but the model in {args.model} "
            f"was fitted on columns {list(names)}: give the columns in the model's order (a "
            "file without a header is taken as it is)."
        )
        raise ValueError(msg)
    with warnings.catch_warnings():  # a table is read as an array: the names were checked here
        warnings.filterwarnings("ignore", "X does not have valid feature names", UserWarning)
        labels = to_numpy(model.predict(X))
    sizes = np.bincount(labels, minlength=int(model.cluster_centers_.shape[0]))
    summary = {
        "model": str(args.model),
        "input": str(args.input),
        "n_samples": int(X_host.shape[0]),
        "backend": where,
        "cluster_sizes": sizes.tolist(),
    }
    if args.out is not None:
        write_labels(labels, args.out)
        summary["labels"] = str(args.out)
    else:
        summary["labels"] = labels.tolist()
    out.document(summary)
    if args.out is None:
        if not (out.quiet or out.json):
            sys.stdout.write("".join(f"{int(v)}\n" for v in labels))
    else:
        out.line(f"{args.input}: {labels.shape[0]} rows labelled, cluster sizes {sizes.tolist()}")
        out.line(f"wrote {args.out}")
    return 0


_COMMANDS = {
    "demo": _command_demo,
    "fit": _command_fit,
    "elbow": _command_elbow,
    "predict": _command_predict,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0, or 2 for bad input)."""
    args = _parser().parse_args(argv)
    out = _Printer(args)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return _COMMANDS[args.command](args, out)
    except KeyboardInterrupt:
        print("kmeans-xp: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``kmeans-xp predict ... | head``): nothing more to say to it.
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except MemoryError:
        if args.debug:
            raise
        print("kmeans-xp: error: out of memory for this input and command.", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, TypeError, OSError, ImportError) as exc:
        if args.debug:
            raise
        print(f"kmeans-xp: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _silence_stdout() -> None:
    """Point stdout at the null device, so that Python's flush at exit does not fail again on
    the closed pipe."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
