"""Plots of clusterings: the clusters with their centroids, the elbow curve, silhouettes.

matplotlib is optional (``pip install "kmeans-xp[plot]"``) and imported only when a function
here is called. Every function draws on the given Axes (or a new figure's), returns that Axes and
never calls ``show()``: saving or showing is the caller's choice.
"""

from ._tools.plots import plot_clusters, plot_elbow, plot_silhouette

__all__ = ["plot_clusters", "plot_elbow", "plot_silhouette"]
