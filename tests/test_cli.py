"""The command line, run as a user runs it: in a subprocess, on temporary folders."""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest

from kmeans_xp._demo import tutorial_blobs


def run(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "kmeans_xp", *args], capture_output=True, text=True, cwd=cwd
    )


def test_tutorial_data_is_the_tutorials():
    X = tutorial_blobs()
    np.random.seed(42)  # the tutorial's own generation  # noqa: NPY002
    expected = np.vstack([np.random.normal(c, 1, (50, 2)) for c in (0, 5, 10)])  # noqa: NPY002
    np.testing.assert_array_equal(X, expected)


def test_demo_prints_the_fit_and_writes_two_pngs(tmp_path):
    pytest.importorskip("matplotlib")
    result = run("demo", "--out", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "center 1" in out
    assert "center 3" in out
    assert "inertia:" in out
    assert "iterations:" in out
    for name in ("clusters.png", "elbow.png"):
        png = tmp_path / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png.stat().st_size > 5000  # a drawn figure, not an empty canvas


def test_demo_recovers_three_groups_and_an_elbow_at_three(tmp_path):
    from kmeans_xp._demo import run_demo

    summary = run_demo(tmp_path, plot=False)
    sizes = np.bincount(summary["model"].labels_)
    assert sorted(sizes.tolist()) == [50, 50, 50]
    inertias = summary["inertias"]
    assert all(a >= b for a, b in itertools.pairwise(inertias))
    drops = -np.diff(inertias)
    assert drops[1] > 5 * drops[2]  # the big drops end at K=3


def test_demo_without_plots(tmp_path):
    result = run("demo", "--no-plot", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert not list(tmp_path.iterdir())


def test_help_and_unknown_command(tmp_path):
    assert "demo" in run("--help", cwd=tmp_path).stdout
    bad = run("frobnicate", cwd=tmp_path)
    assert bad.returncode == 2
    assert "invalid choice" in bad.stderr
