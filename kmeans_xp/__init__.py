"""kmeans_xp: K-Means written once against the Python array API standard.

The same code clusters NumPy arrays on the CPU, CuPy arrays and PyTorch tensors on a GPU, and
returns its results in the caller's library, on the caller's device.
"""

from ._algorithms.fit import KMeansResult
from ._estimators.functions import k_means, kmeans, kmeans_plusplus
from ._estimators.kmeans import KMeans
from ._estimators.minibatch import MiniBatchKMeans
from ._lib.version import __version__
from ._tools.elbow import ElbowResult, elbow, knee_point
from ._tools.metrics import (
    calinski_harabasz_score,
    davies_bouldin_score,
    silhouette_samples,
    silhouette_score,
)
from ._tools.model_files import load
from .exceptions import ConvergenceWarning, ModelFileError, NotFittedError

__all__ = [
    "ConvergenceWarning",
    "ElbowResult",
    "KMeans",
    "KMeansResult",
    "MiniBatchKMeans",
    "ModelFileError",
    "NotFittedError",
    "__version__",
    "calinski_harabasz_score",
    "davies_bouldin_score",
    "elbow",
    "k_means",
    "kmeans",
    "kmeans_plusplus",
    "knee_point",
    "load",
    "silhouette_samples",
    "silhouette_score",
]
