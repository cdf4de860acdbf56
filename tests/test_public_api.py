"""The public surface is explicit."""

from __future__ import annotations

import kmeans_xp


def test_all_lists_exactly_the_public_names():
    public = {name for name in dir(kmeans_xp) if not name.startswith("_")}
    modules = {"exceptions", "plot"}  # submodules import as attributes
    assert set(kmeans_xp.__all__) - {"__version__"} == public - modules
    for name in kmeans_xp.__all__:
        assert getattr(kmeans_xp, name) is not None


def test_docstring_examples_run():
    import doctest

    from kmeans_xp._estimators import fitted, functions
    from kmeans_xp._estimators import kmeans as _kmeans

    attempted = 0
    for module in (_kmeans, functions, fitted):  # KMeans; kmeans, k_means...; KMeans.save
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert result.failed == 0
        attempted += result.attempted
    assert attempted >= 10
    from kmeans_xp._estimators import minibatch as _minibatch

    result = doctest.testmod(_minibatch, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 3  # MiniBatchKMeans
    assert result.failed == 0


def test_plot_module_is_public_and_lazy():
    import subprocess
    import sys

    # Importing kmeans_xp (and kmeans_xp.plot) must not import matplotlib.
    code = "import sys, kmeans_xp, kmeans_xp.plot; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
