"""The benchmark harness runs end to end on a tiny problem (its speed is not tested here)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).parent.parent


def run_command(
    command: list[str], timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """A benchmark script run from the project root, its output captured; ``env`` is added to
    this process's environment."""
    return subprocess.run(
        command, capture_output=True, text=True, cwd=ROOT, timeout=timeout,
        env=None if env is None else {**os.environ, **env},
    )  # fmt: skip


def test_harness_writes_json_markdown_and_agreeing_inertias(tmp_path):
    command = [
        sys.executable, "-m", "benchmarks", "cpu", "--shapes", "tutorial,300x3x4",
        "--backends", "numpy", "--peers", "scipy,tutorial,gemm", "--iters", "2",
        "--repeats", "1", "--e2e-repeats", "1", "--e2e-inits", "k-means++,k-means||",
        "--out", str(tmp_path),
    ]  # fmt: skip
    done = run_command(command)
    assert done.returncode == 0, done.stderr
    assert "[2/2] shape (300, 3, 4)" in done.stdout  # progress lines
    results = json.loads((tmp_path / "cpu.json").read_text())
    assert [r["shape"] for r in results["results"]] == ["tutorial (150, 2, 3)", "(300, 3, 4)"]
    for shape in results["results"]:
        rows = {r["name"]: r for r in shape["rows"]}
        reference = rows["kmeans_xp[numpy]"]["inertia"]
        assert reference > 0
        for name in ("scipy-kmeans2", "tutorial"):
            if rows[name]["skipped"] is None:  # scipy may be missing
                assert np.isclose(rows[name]["inertia"], reference, rtol=1e-4)
        assert rows["GEMM[numpy]"]["ms_per_iter"] is not None
    table = (tmp_path / "cpu.md").read_text()
    assert "| kmeans_xp[numpy] |" in table
    assert "Default end-to-end fit" in table
    assert "| kmeans_xp[numpy] k-means|| |" in table  # the second init asked for
    assert not (tmp_path / "X.npy").exists()  # scratch files are removed


def test_an_implementation_that_fails_costs_only_its_own_row(capsys, tmp_path):
    """On a GPU run that cannot be repeated cheaply, an implementation that raises (a kernel
    that does not compile, say) is reported as failed and the others are still measured."""
    import argparse

    from benchmarks.__main__ import run_shape
    from benchmarks.data import Shape
    from benchmarks.implementations import GemmFloor, Implementation

    class Broken(Implementation):
        name, kind = "broken", "peer"

        def prepare(self, X, C0):
            raise RuntimeError("no such kernel")

    args = argparse.Namespace(iters=1, repeats=1, e2e=False, label_check=False, out=tmp_path)
    result = run_shape(Shape(200, 3, 4), [Broken(), GemmFloor("numpy")], args, gpu=False)
    rows = {r["name"]: r for r in result["rows"]}
    assert rows["broken"]["skipped"] == "failed: RuntimeError: no such kernel"
    assert rows["GEMM[numpy]"]["ms_per_iter"] > 0
    assert "no such kernel" in capsys.readouterr().err  # the traceback, for the record


def test_state_memory_benchmark_runs_small():
    command = [sys.executable, "-m", "benchmarks.state_memory", "--n", "20000"]
    done = run_command(command)
    assert done.returncode == 0, done.stderr
    for init in ("explicit", "random", "k-means++", "k-means||"):
        assert f"streamed fit, init={init}," in done.stdout
    assert "Lloyd fit, array-api-strict" in done.stdout


@pytest.mark.parametrize("threads_from", ["0", "1000000"])
def test_kmeanspp_time_benchmark_sets_the_threads_threshold(threads_from):
    command = [
        sys.executable, "-m", "benchmarks.kmeanspp_memory", "--skip-memory",
        "--time-shape", "3000x4x8", "--threads-from", threads_from,
    ]  # fmt: skip
    done = run_command(command)
    assert done.returncode == 0, done.stderr
    assert "bytes per row" not in done.stdout  # --skip-memory
    assert f"3000 x 4 -> 8, pass shared from {threads_from} rows: median" in done.stdout
    assert "ms a center" in done.stdout


def test_gpu_targets_script_runs_on_the_cpu(tmp_path):
    """Issue 4's memory and k-means++ measurements, their code path on NumPy at toy shapes."""
    out = tmp_path / "targets.json"
    command = [
        sys.executable, "-m", "benchmarks.gpu_targets", "--device", "cpu",
        "--memory-shape", "20000x8x16", "--init-shape", "20000x16x32", "--out", str(out),
    ]  # fmt: skip
    done = run_command(command)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["memory"]["finished"] is True
    assert result["memory"]["shape"] == [20000, 8, 16]
    assert result["init"]["ratio"] == pytest.approx(
        result["init"]["kmeans_plusplus_s"] / result["init"]["lloyd_20_s"]
    )
    assert result["init"]["same_picks"] is True  # NumPy: the standard version both times
    assert result["init"]["same_picks_cupy_sampling"] is True
    assert result["init"]["same_picks_unpruned"] is True
    assert result["init"]["standard_kmeans_plusplus_s"] > 0
    assert result["init"]["cupy_sampling_kmeans_plusplus_s"] > 0


def test_gpu_profile_script_runs_on_the_cpu(tmp_path):
    """The profile's code path on torch's CPU operators: per-iteration kernels are the
    difference of two fits, so the fit's fixed work (validation, the final pass) drops out."""
    pytest.importorskip("torch")
    out = tmp_path / "profile.json"
    command = [
        sys.executable, "-m", "benchmarks.gpu_profile", "--backend", "torch",
        "--shapes", "20000x16x32", "--iters", "2", "--kmeanspp", "4", "--out", str(out),
        "--streaming", "20000x8x16", "--streaming-device", "cpu", "--host-top", "200",
        "--top", "1000",  # every operator whose calls rose: which lead by time is up to the load
    ]  # fmt: skip
    done = run_command(command)
    assert done.returncode == 0, done.stderr
    init, streamed, lloyd = json.loads(out.read_text())  # streaming before the Lloyd shapes
    assert streamed["shape"] == [20000, 8, 16]
    assert init["shape"] == [20000, 16, 4]
    assert lloyd["shape"] == [20000, 16, 32]
    # Structure only: the times are differences of two timed fits, which a loaded machine can
    # turn negative (no timing assertions); the products' operator runs more often in the longer
    # fit, so it is listed whatever its time (it fell out of the default top 12 under load).
    assert lloyd["kernels"]
    assert all(np.isfinite(row["ms_per"]) for row in lloyd["kernels"])
    assert any("matmul" in row["kernel"] or "mm" in row["kernel"] for row in lloyd["kernels"])
    # The host's side of the same difference (cProfile): the pass runs once per iteration.
    host = {row["function"]: row for row in lloyd["host"]}
    passes = [row for name, row in host.items() if "standard_assign_and_sum" in name]
    assert passes
    assert passes[0]["calls_per"] == 1.0


def test_gpu_profile_takes_the_benchmarks_variants(tmp_path):
    """``--backend torch,torch:gemm``: a variant runs where it changes the kernels (gemm: where
    the small-k·d pass would run), is left out where it does not; a bad one is refused."""
    pytest.importorskip("torch")
    out = tmp_path / "profile.json"
    command = [
        sys.executable, "-m", "benchmarks.gpu_profile", "--backend", "torch,torch:gemm",
        "--shapes", "3000x70x20,3000x8x4", "--iters", "1", "--kmeanspp", "0", "--host-top", "0",
        "--out", str(out),
    ]  # fmt: skip
    done = run_command(command)
    assert done.returncode == 0, done.stderr
    runs = [(r["backend"], tuple(r["shape"])) for r in json.loads(out.read_text())]
    assert runs == [
        ("torch", (3000, 70, 20)),
        ("torch", (3000, 8, 4)),
        ("torch:gemm", (3000, 8, 4)),
    ]
    bad = run_command([*command[:4], "torch:tf32x4", *command[5:]], timeout=60)
    assert bad.returncode == 2
    assert "tf32x4" in bad.stderr


def test_unknown_peer_is_a_usage_error(tmp_path):
    command = [sys.executable, "-m", "benchmarks", "cpu", "--peers", "nope", "--out", str(tmp_path)]
    done = run_command(command, timeout=60)
    assert done.returncode == 2
    assert "unknown peer" in done.stderr


def test_silhouette_benchmark_scores_agree():
    pytest.importorskip("sklearn")
    command = [sys.executable, "-m", "benchmarks.silhouette", "--n", "600", "--d", "3", "--k", "4"]
    done = run_command(command)
    assert done.returncode == 0, done.stderr
    scores = [
        float(line.split("silhouette ")[1].split(",")[0]) for line in done.stdout.splitlines()
    ]
    assert len(scores) == 2
    assert scores[0] == pytest.approx(scores[1], abs=1e-6)


def test_init_quality_potential_and_ratio():
    from benchmarks.init_quality import mean_ratio, potential

    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 3)).astype(np.float32)
    C = X[:4]
    brute = ((X.astype(np.float64)[:, None, :] - C.astype(np.float64)[None]) ** 2).sum(-1)
    assert potential(X, C, block_rows=64) == pytest.approx(brute.min(axis=1).sum(), rel=1e-12)
    ratio, se = mean_ratio([2.0, 4.0], [1.0, 3.0])
    assert ratio == pytest.approx(1.5)
    assert se > 0


def test_init_quality_runs_against_sklearn():
    pytest.importorskip("sklearn")
    command = [
        sys.executable, "-m", "benchmarks.init_quality", "--shape", "400x3x5", "--seeds", "2",
        "--fit",
    ]  # fmt: skip
    done = run_command(command)
    assert done.returncode == 0, done.stderr
    assert "seed 1: k-means++ potential ours" in done.stdout
    assert "init: mean ours / mean sklearn = " in done.stdout
    assert "fit: mean ours / mean sklearn = " in done.stdout


def test_minibatch_benchmark_runs():
    command = [
        sys.executable, "-m", "benchmarks.minibatch", "--shape", "3000x3x4", "--batch", "256",
    ]  # fmt: skip
    done = run_command(command)
    assert done.returncode == 0, done.stderr
    assert "kmeans_xp partial_fit, one pass" in done.stdout
    assert "(1.0000 of the full fit)" in done.stdout  # the reference line
    pytest.importorskip("sklearn")
    done = run_command([*command, "--seeds", "2"])
    assert done.returncode == 0, done.stderr
    assert "seed 1: kmeans_xp" in done.stdout
    assert "kmeans_xp lower in" in done.stdout


def test_dask_scaling_benchmark_runs(tmp_path):
    pytest.importorskip("distributed")
    command = [
        sys.executable, "-m", "benchmarks.dask_scaling", "--ns", "3000", "--workers", "1",
        "--d", "3", "--k", "4", "--png", str(tmp_path / "scaling.png"),
    ]  # fmt: skip
    done = run_command(command)
    assert done.returncode == 0, done.stderr
    assert "| kmeans_xp[dask] | 1 | 3,000 |" in done.stdout
    assert "| kmeans_xp[numpy] in memory | none | 3,000 |" in done.stdout


def test_larger_than_ram_script_runs_small(tmp_path):
    path = tmp_path / "X.npy"
    command = [
        sys.executable, "-m", "benchmarks.larger_than_ram", "--path", str(path), "--rows",
        "20000", "--d", "8", "--k", "4", "--max-iter", "2",
    ]  # fmt: skip
    done = run_command(command)
    assert done.returncode == 0, done.stderr
    assert "peak resident MiB: VmHWM" in done.stdout
    assert not path.exists()  # removed without --keep


def test_float64_label_check_counts_worse_labels():
    from helpers import nearest64, sq_distances64

    from benchmarks.implementations import KMeansXP, backend_impl, by_name
    from benchmarks.measure import float64_nearest, label_check

    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 5)).astype(np.float32)
    C = rng.normal(size=(7, 5)).astype(np.float32)
    index, best = float64_nearest(X, C)
    np.testing.assert_array_equal(index, nearest64(X, C))
    np.testing.assert_allclose(best, sq_distances64(X, C).min(axis=1), rtol=1e-9, atol=1e-9)
    assert label_check(index, X, C, best) == {"label_errors": 0.0, "worst_excess": 0.0}
    worse = index.copy()
    worse[:6] = np.argmax(sq_distances64(X[:6], C), axis=1)  # the farthest center instead
    result = label_check(worse, X, C, best)
    assert result["label_errors"] == pytest.approx(6 / 3000)
    d = sq_distances64(X[:6], C)
    assert result["worst_excess"] == pytest.approx(np.max(d.max(1) / d.min(1) - 1), rel=1e-9)
    # kmeans_xp's own assignment for the check, and the precision in a backend's name.
    np.testing.assert_array_equal(KMeansXP("numpy").assign(X, C), nearest64(X, C))
    assert backend_impl("cupy:high").name == "kmeans_xp[cupy, high]"
    assert backend_impl("cupy").precision == "auto"  # the library's default
    assert backend_impl("cupy:highest").name == "kmeans_xp[cupy, highest]"
    assert by_name("kmeans_xp[cupy, highest]").precision == "highest"
    assert by_name("kmeans_xp[cupy, tf32x3]").precision == "tf32x3"


def test_float64_label_check_of_a_row_on_its_center():
    """Found on shape C (k = 16384, clusters of one row): a row equal to its center up to
    float32 rounding. The GEMM form's distance for it is noise clipped to 0, so the right label
    had counted as worse by 1e295; distances by explicit differences count it right."""
    from benchmarks.measure import float64_nearest, label_check

    rng = np.random.default_rng(1)
    X = (100.0 + rng.normal(size=(50, 256))).astype(np.float32)
    C = X[:8].copy()
    C[3] = np.nextafter(C[3], np.float32(np.inf))  # a center one ulp from row 3
    index, best = float64_nearest(X, C)
    assert index[3] == 3
    assert 0 < best[3] < 1e-6
    assert label_check(index, X, C, best) == {"label_errors": 0.0, "worst_excess": 0.0}


def test_gemm_variant_turns_the_fused_pass_off_only_while_it_runs():
    """``cupy:gemm`` (cuBLAS at every shape) beside ``cupy``: the switch is set during its fit
    and restored after, even when the fit fails."""
    from benchmarks.implementations import KMeansXP, backend_impl, by_name
    from kmeans_xp._lib.options import current_options

    gemm = backend_impl("cupy:gemm")
    assert (gemm.name, gemm.small_pass, gemm.precision) == (
        "kmeans_xp[cupy, gemm]",
        False,
        "auto",
    )
    assert by_name("kmeans_xp[cupy, gemm]").small_pass is False
    assert gemm.fits(10_000_000, 32, 64) is None  # shape B: measured against the fused pass
    assert "same kernels" in gemm.fits(1_048_576, 128, 1024)  # shape A: nothing to compare
    assert backend_impl("cupy").fits(1_048_576, 128, 1024) is None
    seen = []
    numpy_gemm = KMeansXP("numpy", small_pass=False)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3)).astype(np.float32)
    numpy_gemm.prepare(X, X[:4].copy())
    with numpy_gemm._kernels():
        seen.append(current_options().small_pass)
    centers, n_iter = numpy_gemm.iterate(2)
    assert seen == [False]
    assert current_options().small_pass is True
    assert centers.shape == (4, 3)
    assert n_iter == 2
    with pytest.raises(RuntimeError), numpy_gemm._kernels():
        raise RuntimeError("a failed fit")
    assert current_options().small_pass is True


def test_mma_variant_turns_the_tensor_core_kernel_on_only_while_it_runs():
    """``cupy:tf32x3:mma`` (the fused tensor-core kernel) beside ``cupy:tf32x3``: named and
    parsed back, run at every shape (it takes the small-k·d ones too), the switch set only
    during its fit; an unknown variant, or mma without TF32 products, is refused."""
    from benchmarks.implementations import KMeansXP, backend_impl, by_name
    from kmeans_xp._lib.options import current_options

    mma = backend_impl("cupy:tf32x3:mma")
    assert (mma.name, mma.precision, mma.mma, mma.small_pass) == (
        "kmeans_xp[cupy, tf32x3, mma]",
        "tf32x3",
        True,
        True,
    )
    assert by_name(mma.name).mma is True
    assert by_name("kmeans_xp[cupy, high]").mma is False
    assert mma.fits(1_048_576, 128, 1024) is None  # shape A: against cuBLAS
    assert mma.fits(10_000_000, 32, 64) is None  # shape B: against the small-k·d pass
    with pytest.raises(ValueError, match="tf32x4"):
        backend_impl("cupy:tf32x4")
    with pytest.raises(ValueError, match="high or tf32x3"):
        backend_impl("cupy:mma")
    numpy_mma = KMeansXP("numpy", "tf32x3", mma=True)
    seen = []
    with numpy_mma._kernels():
        seen.append(current_options().mma)
    assert seen == [True]
    assert current_options().mma is False
    with pytest.raises(RuntimeError), numpy_mma._kernels():
        raise RuntimeError("a failed fit")
    assert current_options().mma is False


def test_gpu_mode_without_a_gpu_reports_every_peer_skipped(tmp_path):
    """The GPU harness runs end to end where no GPU answers: every row says why it skipped.
    On a GPU machine the card is hidden from it (the benchmark step of ci/gpu.sh runs it there
    with every peer; here it had taken past the test step's time limit, compiling them)."""
    command = [
        sys.executable, "-m", "benchmarks", "gpu", "--shapes", "300x3x4", "--iters", "1",
        "--repeats", "1", "--no-e2e", "--backends",
        "cupy,cupy:high,cupy:tf32x3,cupy:gemm,torch_cuda",
        "--out", str(tmp_path),
    ]  # fmt: skip
    done = run_command(command, env={"CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 0, done.stderr
    rows = json.loads((tmp_path / "gpu.json").read_text())["results"][0]["rows"]
    names = [r["name"] for r in rows]
    assert names[:5] == [
        "kmeans_xp[cupy]", "kmeans_xp[cupy, high]", "kmeans_xp[cupy, tf32x3]",
        "kmeans_xp[cupy, gemm]", "kmeans_xp[torch_cuda]",
    ]  # fmt: skip
    for peer in ("torch-plain", "cupy-naive", "fast-pytorch-kmeans", "flash-kmeans"):
        assert peer in names
    assert "GEMM[torch_cuda, tf32x3]" in names
    assert all(r["skipped"] for r in rows)  # no GPU answers: each row says why


def test_streaming_benchmark_runs_on_the_cpu(tmp_path):
    """The GPU streaming benchmark's code path, with NumPy as the "device"."""
    out = tmp_path / "streaming.json"
    command = [
        sys.executable, "-m", "benchmarks.streaming", "--device", "cpu",
        "--shape", "20000x8x16", "--iters", "1", "--out", str(out),
    ]  # fmt: skip
    done = run_command(command)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["shape"] == [20000, 8, 16]
    assert result["budget_mb"] < result["x_mb"] + 20000 * 32 / 2**20  # streaming was forced
    # A difference of two fit times: at this toy size it can even come out negative (noise), so
    # only its presence is checked; the number that counts is measured on a GPU.
    assert np.isfinite(result["iteration_ms"])
    assert result["ratio"] == pytest.approx(result["iteration_ms"] / result["copy_ms"])
    # Both copy modes timed; on a host "device" neither page-locks nor stages.
    assert list(result["modes"]) == ["registered", "staged"]
    for row in result["modes"].values():
        assert row["taken"] == "host"
        assert row["ratio"] == pytest.approx(row["iteration_ms"] / result["copy_ms"])
    bad = run_command([*command[:-2], "--copy", "pinned"])
    assert bad.returncode == 2
    assert "--copy: unknown mode 'pinned'" in bad.stderr


def test_predict_benchmark_prints_a_row_per_library():
    pytest.importorskip("sklearn")
    command = [
        sys.executable, "-m", "benchmarks.predict", "--shapes", "3000x4x8", "--repeats", "1",
    ]  # fmt: skip
    libraries = ["kmeans_xp", "scikit-learn"]
    if importlib.util.find_spec("torch") is not None:
        command.append("--torch")
        libraries.append("kmeans_xp, torch CPU tensor")
    done = run_command(command)
    assert done.returncode == 0, done.stderr
    for library in libraries:
        row = rf"\| \(3,000, 4, 8\) \| {library} \| [\d.]+ \| [\d.]+ \| [\d.]+ \|"
        assert re.search(row, done.stdout), done.stdout


@pytest.mark.parametrize("data", ["normal", "mixture"])
def test_algorithms_benchmark_prints_a_row_per_shape(data):
    command = [
        sys.executable, "-m", "benchmarks.algorithms", "--shapes", "600x4x5", "--data", data,
        "--algorithms", "auto,lloyd,hamerly", "--seeds", "2",
    ]  # fmt: skip
    done = run_command(command)
    assert done.returncode == 0, done.stderr
    cell = r"[\d.]+ \(\d+, \d+\)"
    assert re.search(rf"\| \(600, 4, 5\) \| {cell} \| {cell} \| {cell} \|", done.stdout), (
        done.stdout
    )


def test_tiny_values_benchmark_counts_wrong_partitions_per_limit():
    """Both limits, each backend a line: NumPy finds the three blobs at either scale; a GPU
    backend is counted where a GPU answers, else said to be skipped."""
    command = [
        sys.executable, "-m", "benchmarks.tiny_values", "--backends", "numpy,cupy", "--seeds", "2"
    ]  # fmt: skip
    done = run_command(command)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "old limit (largest |value| 7.67e-20): numpy wrong partitions in 2 seeds: 0" in lines
    assert "new limit (largest |value| 8.88e-16): numpy wrong partitions in 2 seeds: 0" in lines
    for which in ("old", "new"):
        assert any(line.startswith(f"{which} limit") and "cupy" in line for line in lines)
