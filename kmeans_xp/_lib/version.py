"""The package version, in one place (``kmeans_xp.__version__`` and model files read it)."""

__version__ = "0.1.0"
