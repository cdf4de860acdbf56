"""The tutorial the project grew from, end to end: three blobs, K=3, and the elbow curve."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .._estimators.kmeans import KMeans
from .elbow import ElbowResult, elbow


def tutorial_blobs() -> np.ndarray:
    """The tutorial's data: 50 points each around (0, 0), (5, 5) and (10, 10), sd 1, seed 42."""
    rng = np.random.RandomState(42)  # the tutorial's np.random.seed(42) stream
    return np.vstack([rng.normal(center, 1.0, (50, 2)) for center in (0.0, 5.0, 10.0)])


def run_demo(
    out_dir: Path,
    *,
    plot: bool = True,
    random_state: int = 0,
    printer: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Fit the tutorial data, print the result, and write clusters.png and elbow.png.

    Plots are written only when matplotlib is installed (the ``plot`` extra) and ``plot`` is
    true. Returns the model, the elbow result, the files written and a JSON-able summary.
    """
    X = tutorial_blobs()
    model = KMeans(n_clusters=3, random_state=random_state).fit(X)
    order = np.argsort(model.cluster_centers_[:, 0])  # print centers left to right
    printer("kmeans_xp demo: the tutorial's three blobs (150 points, 2-D), K=3")
    for i, c in enumerate(model.cluster_centers_[order]):
        size = int(np.sum(model.labels_ == order[i]))
        printer(f"  center {i + 1}: ({c[0]:7.3f}, {c[1]:7.3f})  {size} points")
    printer(f"  inertia: {model.inertia_:.4f}")
    printer(f"  iterations: {model.n_iter_}")
    curve = elbow(X, range(1, 10), random_state=random_state)
    points = ", ".join(f"{k}: {v:.1f}" for k, v in zip(curve.ks, curve.inertias, strict=True))
    printer(f"  elbow (K: inertia): {points}")
    printer(f"  suggested K (knee of the elbow curve): {curve.suggested_k}")
    written: list[Path] = []
    if plot:
        try:
            import matplotlib
        except ImportError:
            printer("  matplotlib is not installed (pip install 'kmeans-xp[plot]'): no plots.")
        else:
            matplotlib.use("Agg")
            written = _write_plots(X, model, curve, out_dir)
            for path in written:
                printer(f"  wrote {path}")
    summary = {
        "centers": model.cluster_centers_[order].tolist(),
        "inertia": float(model.inertia_),
        "n_iter": int(model.n_iter_),
        "elbow": curve.as_dict(),
        "files": [str(p) for p in written],
    }
    return {
        "model": model,
        "elbow": curve,
        "inertias": curve.inertias,
        "written": written,
        "summary": summary,
    }


def _write_plots(X: np.ndarray, model: KMeans, curve: ElbowResult, out_dir: Path) -> list[Path]:
    from .plots import plot_clusters, plot_elbow, save_figure

    out_dir.mkdir(parents=True, exist_ok=True)
    save_figure(
        lambda ax: plot_clusters(X, model, ax=ax, title="K-Means (kmeans_xp)"),
        out_dir / "clusters.png",
    )
    save_figure(lambda ax: plot_elbow(curve, ax=ax), out_dir / "elbow.png")
    return [out_dir / "clusters.png", out_dir / "elbow.png"]
