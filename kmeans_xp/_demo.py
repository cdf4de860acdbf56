"""The tutorial the project grew from, end to end: three blobs, K=3, and the elbow curve."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._kmeans import KMeans


def tutorial_blobs() -> np.ndarray:
    """The tutorial's data: 50 points each around (0, 0), (5, 5) and (10, 10), sd 1, seed 42."""
    rng = np.random.RandomState(42)  # the tutorial's np.random.seed(42) stream
    return np.vstack([rng.normal(center, 1.0, (50, 2)) for center in (0.0, 5.0, 10.0)])


def elbow_inertias(X: np.ndarray, ks: range, random_state: int) -> list[float]:
    """Inertia (the true sum of squared distances) of a fit for each K."""
    return [KMeans(n_clusters=k, random_state=random_state).fit(X).inertia_ for k in ks]


def run_demo(out_dir: Path, *, plot: bool = True, random_state: int = 0) -> dict:
    """Fit the tutorial data, print the result, and write clusters.png and elbow.png.

    Plots are written only when matplotlib is installed (the ``plot`` extra) and ``plot`` is
    true. Returns what was printed, as a dict, for tests.
    """
    X = tutorial_blobs()
    model = KMeans(n_clusters=3, random_state=random_state).fit(X)
    order = np.argsort(model.cluster_centers_[:, 0])  # print centers left to right
    print("kmeans_xp demo: the tutorial's three blobs (150 points, 2-D), K=3")
    for i, c in enumerate(model.cluster_centers_[order]):
        size = int(np.sum(model.labels_ == order[i]))
        print(f"  center {i + 1}: ({c[0]:7.3f}, {c[1]:7.3f})  {size} points")
    print(f"  inertia: {model.inertia_:.4f}")
    print(f"  iterations: {model.n_iter_}")
    ks = range(1, 10)
    inertias = elbow_inertias(X, ks, random_state)
    curve = ", ".join(f"{k}: {v:.1f}" for k, v in zip(ks, inertias, strict=True))
    print(f"  elbow (K: inertia): {curve}")
    written = []
    if plot:
        try:
            import matplotlib
        except ImportError:
            print("  matplotlib is not installed (pip install 'kmeans-xp[plot]'): no plots.")
        else:
            matplotlib.use("Agg")
            written = _write_plots(X, model, ks, inertias, out_dir)
            for path in written:
                print(f"  wrote {path}")
    return {"model": model, "inertias": inertias, "written": written}


def _write_plots(X, model, ks, inertias, out_dir: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 5))
    for k in range(model.n_clusters):
        members = X[model.labels_ == k]
        ax.scatter(members[:, 0], members[:, 1], s=18, label=f"Cluster {k + 1}")
    centers = model.cluster_centers_
    ax.scatter(centers[:, 0], centers[:, 1], c="black", marker="x", s=100, label="Centroids")
    ax.set_title("K-Means clustering (kmeans_xp)")
    ax.legend()
    clusters_png = out_dir / "clusters.png"
    fig.savefig(clusters_png, dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(list(ks), inertias, marker="o")
    ax.set_xlabel("K")
    ax.set_ylabel("Inertia (sum of squared distances)")
    ax.set_title("Elbow method")
    elbow_png = out_dir / "elbow.png"
    fig.savefig(elbow_png, dpi=100)
    plt.close(fig)
    return [clusters_png, elbow_png]
