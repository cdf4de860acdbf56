"""The public surface is explicit."""

from __future__ import annotations

import kmeans_xp


def test_all_lists_exactly_the_public_names():
    public = {name for name in dir(kmeans_xp) if not name.startswith("_")}
    modules = {"exceptions"}  # submodules import as attributes
    assert set(kmeans_xp.__all__) - {"__version__"} == public - modules
    for name in kmeans_xp.__all__:
        assert getattr(kmeans_xp, name) is not None


def test_docstring_examples_run():
    import doctest

    from kmeans_xp import _kmeans

    result = doctest.testmod(_kmeans, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 3
    assert result.failed == 0
