"""kmeans_xp: K-Means written once against the Python array API standard.

The same code clusters NumPy arrays on the CPU, CuPy arrays and PyTorch tensors on a GPU, and
returns its results in the caller's library, on the caller's device.
"""

from ._kmeans import KMeans, KMeansResult, kmeans, kmeans_plusplus
from .exceptions import ConvergenceWarning, NotFittedError

__version__ = "0.1.0"

__all__ = [
    "ConvergenceWarning",
    "KMeans",
    "KMeansResult",
    "NotFittedError",
    "__version__",
    "kmeans",
    "kmeans_plusplus",
]
