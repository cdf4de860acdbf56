"""Plots of clusterings (public as ``kmeans_xp.plot``): the clusters with their centroids,
the elbow curve, silhouettes.

matplotlib is optional (``pip install "kmeans-xp[plot]"``) and imported only when a function
here is called. Every function draws on the given Axes (or a new figure's), returns that Axes and
never calls ``show()``: saving or showing is the caller's choice.

Inputs may be NumPy, CuPy, PyTorch or array-api-strict arrays. Anything computed from X (the
2-D projection, silhouettes) is computed in X's own namespace on X's device; only the points
actually drawn come back to the host.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._estimators.base import feature_names_of
from .._lib.compat import (
    Array,
    accumulation_dtype,
    array_device,
    as_supported_array,
    move_to,
    to_numpy,
)
from .._lib.validation import check_data, check_finite, check_random_state
from .metrics import silhouette_samples, subsample_rows

# Scatter plots of more points than this draw a random subsample (and say so in the title).
DEFAULT_MAX_POINTS = 20_000


def _pyplot(function: str) -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        msg = (
            f"kmeans_xp._tools.plots.{function} needs matplotlib, which is not installed: "
            'pip install "kmeans-xp[plot]"'
        )
        raise ImportError(msg) from exc
    return plt


def _axes(ax: Any, function: str, figsize: tuple[float, float] = (6.0, 5.0)) -> Any:
    plt = _pyplot(function)
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def save_figure(
    draw: Any, path: Any, *, figsize: tuple[float, float] = (6.0, 5.0), dpi: int = 100
) -> None:
    """Draw on a new figure's Axes with ``draw(ax)``, save it to ``path`` and close it."""
    plt = _pyplot("save_figure")
    fig, ax = plt.subplots(figsize=figsize)
    try:
        draw(ax)
        fig.tight_layout()
        fig.savefig(path, dpi=dpi)
    finally:
        plt.close(fig)


def cluster_colors(n: int) -> list[tuple[float, float, float, float]]:
    """``n`` distinct colours: tab10 / tab20 for up to 20 clusters, else evenly spaced turbo."""
    from matplotlib import colormaps

    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    if n <= 20:
        return [colormaps["tab20"](i) for i in range(n)]
    return [colormaps["turbo"](i / (n - 1)) for i in range(n)]


def _host_labels(labels: Any, n_samples: int, name: str = "labels") -> np.ndarray:
    labels = to_numpy(as_supported_array(labels, name))
    if labels.shape != (n_samples,):
        msg = f"{name} must have shape ({n_samples},) to match X, got shape {labels.shape}."
        raise ValueError(msg)
    return labels


def project_2d(X: Array, centers: Array | None, *, xp: Any) -> tuple[Array, Array | None, list]:
    """Coordinates to draw: X itself for d ≤ 2, else its first two principal components.

    The principal axes come from the covariance of X (a d×d GEMM and ``linalg.eigh``, in X's
    namespace); each axis's sign is fixed so that its largest coordinate is positive, so a plot
    does not flip between runs or backends. Returns the projected X, the projected centers and
    the two axis labels.
    """
    n_samples, n_features = X.shape
    if n_features == 1:
        zeros = xp.zeros_like(X)
        points = xp.concat([X, zeros], axis=1)
        projected_centers = None
        if centers is not None:
            projected_centers = xp.concat([centers, xp.zeros_like(centers)], axis=1)
        return points, projected_centers, ["feature 0", ""]
    if n_features == 2:
        return X, centers, ["feature 0", "feature 1"]
    acc = accumulation_dtype(xp, array_device(X))
    X_acc = xp.astype(X, acc)
    mean = xp.mean(X_acc, axis=0)
    centered = X_acc - mean
    covariance = centered.T @ centered / max(n_samples - 1, 1)
    eigenvalues, eigenvectors = xp.linalg.eigh(covariance)  # ascending
    axes = xp.stack([eigenvectors[:, -1], eigenvectors[:, -2]], axis=1)  # (d, 2)
    largest = xp.argmax(xp.abs(axes), axis=0)
    signs = xp.sign(xp.stack([axes[largest[0], 0], axes[largest[1], 1]]))
    axes = axes * xp.where(signs == 0, xp.ones_like(signs), signs)[None, :]
    total = float(xp.sum(eigenvalues))
    shares = [float(eigenvalues[-1]), float(eigenvalues[-2])]
    names = [
        f"PC{i + 1} ({100 * share / total:.0f}% of variance)" if total > 0 else f"PC{i + 1}"
        for i, share in enumerate(shares)
    ]
    points = centered @ axes
    projected_centers = None
    if centers is not None:
        projected_centers = (xp.astype(centers, acc) - mean) @ axes
    return points, projected_centers, names


def plot_clusters(
    X: Any,
    labels_or_model: Any,
    centers: Any = None,
    ax: Any = None,
    *,
    max_points: int = DEFAULT_MAX_POINTS,
    random_state: Any = 0,
    title: str | None = None,
) -> Any:
    """Scatter plot of X coloured by cluster, with the centroids marked.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        For more than two features the plot shows the first two principal components (computed
        in X's namespace); the centroids are projected the same way. With one or two features
        a DataFrame's string column names label the axes.
    labels_or_model : array-like of shape (n_samples,) or fitted KMeans
        Cluster of each row, or a fitted model: its ``predict(X)`` labels the rows and its
        ``cluster_centers_`` are drawn.
    centers : array of shape (n_clusters, n_features), optional
        Centroids to mark (default: the model's, if a model was given).
    ax : matplotlib Axes, optional
        Where to draw; a new figure's Axes when None.
    max_points : int, default 20000
        At most this many rows are drawn, chosen at random; the title says so.
    random_state : None, int or numpy.random.Generator, default 0
        Chooses the subsample.
    title : str, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = _axes(ax, "plot_clusters")
    X_given = X  # a DataFrame keeps its column names for the model's check and the axes
    X, xp, device = check_data(X, "X")
    check_finite(X, "X", xp=xp, block_rows=65_536)
    n_samples = X.shape[0]
    if hasattr(labels_or_model, "predict"):  # a model: an unfitted one raises NotFittedError
        labels = labels_or_model.predict(X_given)
        if centers is None:
            centers = labels_or_model.cluster_centers_
    else:
        labels = labels_or_model
    labels = _host_labels(labels, n_samples)
    if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 1:
        msg = f"max_points must be a positive integer, got {max_points!r}."
        raise ValueError(msg)
    shown = n_samples
    if n_samples > max_points:
        rng = check_random_state(random_state)
        rows = np.sort(rng.choice(n_samples, size=max_points, replace=False))
        X = xp.take(X, xp.asarray(rows, device=device), axis=0)
        labels = labels[rows]
        shown = max_points
    if centers is not None:
        centers = move_to(as_supported_array(centers, "centers"), xp, device)
        if centers.ndim != 2 or centers.shape[1] != X.shape[1]:
            msg = (
                f"centers must have shape (n_clusters, {X.shape[1]}) to match X, got shape "
                f"{tuple(centers.shape)}."
            )
            raise ValueError(msg)
        centers = xp.astype(centers, X.dtype)
    points, projected_centers, axis_names = project_2d(X, centers, xp=xp)
    points = to_numpy(points)
    column_names = feature_names_of(X_given)
    if column_names is not None and X.shape[1] <= 2:  # the data's own axes: name them
        axis_names = [str(name) for name in column_names] + axis_names[len(column_names) :]

    values = np.unique(labels)
    colors = cluster_colors(len(values))
    for value, color in zip(values, colors, strict=True):
        members = points[labels == value]
        ax.scatter(members[:, 0], members[:, 1], s=12, color=color, label=f"Cluster {value}")
    if projected_centers is not None:
        c = to_numpy(projected_centers)
        ax.scatter(
            c[:, 0], c[:, 1], c="black", marker="X", s=120, edgecolors="white", label="Centroids"
        )
    ax.set_xlabel(axis_names[0])
    ax.set_ylabel(axis_names[1])
    heading = title if title is not None else f"K-Means: {len(values)} clusters"
    if shown < n_samples:
        heading += f"\n(showing {shown:,} of {n_samples:,} points, chosen at random)"
    ax.set_title(heading)
    if len(values) <= 20:
        ax.legend(loc="best", fontsize="small")
    return ax


def plot_elbow(result: Any, ax: Any = None, *, title: str | None = None) -> Any:
    """Inertia against K, with the suggested K marked (and silhouettes, when computed).

    Parameters
    ----------
    result : ElbowResult
        What :func:`kmeans_xp.elbow` returned.
    ax : matplotlib Axes, optional
    title : str, optional

    Returns
    -------
    matplotlib.axes.Axes
        The inertia Axes (a silhouette curve, if any, is on a twin Axes sharing its x axis).
    """
    if not (hasattr(result, "ks") and hasattr(result, "inertias")):
        msg = f"result must be an ElbowResult from kmeans_xp.elbow(), got {type(result).__name__}."
        raise TypeError(msg)
    ax = _axes(ax, "plot_elbow", figsize=(6.0, 4.0))
    ks, inertias = list(result.ks), list(result.inertias)
    ax.plot(ks, inertias, marker="o", color="tab:blue", label="inertia")
    ax.set_xlabel("K (number of clusters)")
    ax.set_ylabel("Inertia (sum of squared distances)")
    ax.set_xticks(ks if len(ks) <= 25 else ks[:: max(1, len(ks) // 25)])
    suggested = getattr(result, "suggested_k", None)
    if suggested is not None:
        ax.axvline(suggested, linestyle="--", color="tab:red", label=f"suggested K = {suggested}")
        ax.plot([suggested], [inertias[ks.index(suggested)]], "o", color="tab:red", ms=10)
    silhouettes = getattr(result, "silhouettes", None)
    handles, names = ax.get_legend_handles_labels()
    if silhouettes is not None:
        twin = ax.twinx()
        (line,) = twin.plot(ks, silhouettes, marker="s", color="tab:green", label="silhouette")
        twin.set_ylabel("Mean silhouette coefficient")
        handles.append(line)
        names.append("silhouette")
    ax.legend(handles, names, loc="upper right", fontsize="small")
    ax.set_title(title if title is not None else "Elbow method")
    return ax


def plot_silhouette(
    X: Any,
    labels: Any,
    ax: Any = None,
    *,
    sample_size: int | None = None,
    random_state: Any = 0,
    title: str | None = None,
) -> Any:
    """The classic silhouette diagram: each cluster's sorted coefficients, and their mean.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
    labels : array-like of shape (n_samples,)
    ax : matplotlib Axes, optional
    sample_size : int, optional
        Draw a random subsample of this many rows (silhouettes cost O(n²·d)).
    random_state : None, int or numpy.random.Generator, default 0
        Chooses the subsample.
    title : str, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = _axes(ax, "plot_silhouette")
    X, xp, device = check_data(X, "X")
    n_samples = X.shape[0]
    labels = _host_labels(labels, n_samples)
    if sample_size is not None:
        rows = subsample_rows(n_samples, sample_size, random_state)
        X = xp.take(X, xp.asarray(rows, device=device), axis=0)
        labels = labels[rows]
    values = to_numpy(silhouette_samples(X, labels))
    mean = float(values.mean())
    clusters = np.unique(labels)
    colors = cluster_colors(len(clusters))
    gap = max(2, len(values) // 100)
    bottom = gap
    for cluster, color in zip(clusters, colors, strict=True):
        s = np.sort(values[labels == cluster])
        top = bottom + len(s)
        ax.fill_betweenx(np.arange(bottom, top), 0, s, facecolor=color, edgecolor=color, alpha=0.8)
        ax.text(-0.05, (bottom + top) / 2, str(cluster), ha="right", va="center", fontsize="small")
        bottom = top + gap
    ax.axvline(mean, color="tab:red", linestyle="--", label=f"mean {mean:.3f}")
    ax.set_xlim(min(-0.1, float(values.min()) - 0.05), 1.0)
    ax.set_ylim(0, bottom)
    ax.set_yticks([])
    ax.set_xlabel("Silhouette coefficient")
    ax.set_ylabel("Cluster")
    ax.legend(loc="lower right", fontsize="small")
    heading = title if title is not None else f"Silhouettes of {len(clusters)} clusters"
    if sample_size is not None and sample_size < n_samples:
        heading += f"\n({sample_size:,} of {n_samples:,} points, chosen at random)"
    ax.set_title(heading)
    return ax
