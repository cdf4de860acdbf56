"""The command line, run as a user runs it: in a subprocess, on temporary folders."""

from __future__ import annotations

import io
import itertools
import json
import subprocess
import sys

import numpy as np
import pytest

from kmeans_xp import KMeans, load
from kmeans_xp._tools.demo import tutorial_blobs
from kmeans_xp._tools.progress import ProgressBar


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
    from kmeans_xp._tools.demo import run_demo

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


# --------------------------------------------------------------------------------------------
# fit / elbow / predict on files
# --------------------------------------------------------------------------------------------


@pytest.fixture
def data_files(tmp_path):
    """The tutorial data as .npy, .csv with a header, .csv without, and .tsv."""
    X = tutorial_blobs()
    np.save(tmp_path / "blobs.npy", X)
    np.savetxt(tmp_path / "header.csv", X, delimiter=",", header="x,y", comments="")
    np.savetxt(tmp_path / "plain.csv", X, delimiter=",")
    np.savetxt(tmp_path / "blobs.tsv", X, delimiter="\t", header="x\ty", comments="")
    return tmp_path, X


@pytest.mark.parametrize("name", ["blobs.npy", "header.csv", "plain.csv", "blobs.tsv"])
def test_fit_writes_labels_centers_model_and_summary(data_files, name):
    folder, X = data_files
    out = folder / f"out_{name}"
    result = run("fit", name, "-k", "3", "--out", str(out), "--backend", "numpy", cwd=folder)
    assert result.returncode == 0, result.stderr
    labels = np.load(out / "labels.npy")
    centers = np.load(out / "centers.npy")
    assert sorted(np.bincount(labels).tolist()) == [50, 50, 50]
    model = KMeans(n_clusters=3, random_state=0).fit(X)  # --seed defaults to 0
    np.testing.assert_allclose(centers, model.cluster_centers_, rtol=1e-12)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_samples"] == 150
    assert summary["inertia"] == pytest.approx(model.inertia_, rel=1e-12)
    assert summary["cluster_sizes"] == np.bincount(labels).tolist()
    saved = load(out / "model.npz")
    if name in ("header.csv", "blobs.tsv"):  # a table's header names the model's features
        assert saved.feature_names_in_.tolist() == ["x", "y"]
        with pytest.warns(UserWarning, match="does not have valid feature names"):
            predicted = saved.predict(X)
    else:
        assert not hasattr(saved, "feature_names_in_")
        predicted = saved.predict(X)
    np.testing.assert_array_equal(predicted, labels)
    table = result.stdout
    assert "150 rows x 2 features, K=3" in table
    assert "inertia" in table


def test_fit_json_and_quiet_modes(data_files):
    folder, _ = data_files
    as_json = run("fit", "blobs.npy", "-k", "3", "--json", "--out", "o1", cwd=folder)
    assert as_json.returncode == 0, as_json.stderr
    summary = json.loads(as_json.stdout)  # stdout is exactly one JSON document
    assert summary["n_clusters"] == 3
    quiet = run("fit", "blobs.npy", "-k", "3", "--quiet", "--out", "o2", cwd=folder)
    assert quiet.returncode == 0
    assert quiet.stdout == ""
    assert (folder / "o2" / "model.npz").exists()


def test_fit_options_reach_the_estimator(data_files):
    folder, X = data_files
    result = run(
        "fit", "blobs.npy", "-k", "4", "--init", "random", "--n-init", "3", "--max-iter", "1",
        "--seed", "5", "--json", "--out", "o", "--backend", "numpy", "--algorithm", "lloyd",
        cwd=folder,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    expected = KMeans(n_clusters=4, init="random", n_init=3, max_iter=1, random_state=5).fit(X)
    assert summary["n_iter"] == 1
    assert summary["inertia"] == pytest.approx(expected.inertia_, rel=1e-12)
    params = load(folder / "o" / "model.npz").get_params()
    assert params["init"] == "random"
    assert params["n_init"] == 3
    assert params["algorithm"] == "lloyd"


def test_fit_with_kmeans_parallel_init(data_files):
    folder, X = data_files
    result = run(
        "fit", "blobs.npy", "-k", "4", "--init", "k-means||", "--seed", "2", "--json",
        "--out", "o", "--backend", "numpy", cwd=folder,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    expected = KMeans(n_clusters=4, init="k-means||", random_state=2).fit(X)
    assert json.loads(result.stdout)["inertia"] == pytest.approx(expected.inertia_, rel=1e-12)
    assert load(folder / "o" / "model.npz").get_params()["init"] == "k-means||"


def test_fit_plot_writes_a_png(data_files):
    pytest.importorskip("matplotlib")
    folder, _ = data_files
    result = run("fit", "blobs.npy", "-k", "3", "--plot", "--out", "o", "--quiet", cwd=folder)
    assert result.returncode == 0, result.stderr
    png = folder / "o" / "clusters.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 5000


def test_elbow_prints_the_curve_and_suggests_three(data_files):
    folder, _ = data_files
    result = run("elbow", "header.csv", "--k", "1:8", "--silhouette", cwd=folder)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == "suggested K: 3"
    assert "silhouette" in lines[1]
    assert len([line for line in lines if line.strip().split(" ")[0].isdigit()]) == 8


def test_elbow_json_and_plot(data_files):
    folder, _ = data_files
    args = ["elbow", "blobs.npy", "--k", "2,3,5", "--silhouette", "--json"]
    if _has_matplotlib():
        args += ["--plot", "curve.png"]
    result = run(*args, cwd=folder)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["ks"] == [2, 3, 5]
    assert data["suggested_k"] == 3
    assert len(data["silhouettes"]) == 3
    if _has_matplotlib():
        assert (folder / "curve.png").stat().st_size > 5000


def test_elbow_k1_silhouette_is_null_in_json(data_files):
    folder, _ = data_files
    result = run("elbow", "blobs.npy", "--k", "1:3", "--silhouette", "--json", cwd=folder)
    assert json.loads(result.stdout)["silhouettes"][0] is None


def test_predict_labels_new_rows_with_a_saved_model(data_files):
    folder, _ = data_files
    assert run("fit", "blobs.npy", "-k", "3", "--out", "o", "--quiet", cwd=folder).returncode == 0
    fitted_labels = np.load(folder / "o" / "labels.npy")
    to_file = run("predict", "o/model.npz", "plain.csv", "--out", "p.npy", cwd=folder)
    assert to_file.returncode == 0, to_file.stderr
    np.testing.assert_array_equal(np.load(folder / "p.npy"), fitted_labels)
    to_text = run("predict", "o/model.npz", "blobs.tsv", "--out", "p.txt", cwd=folder)
    assert to_text.returncode == 0, to_text.stderr
    np.testing.assert_array_equal(np.loadtxt(folder / "p.txt", dtype=int), fitted_labels)
    to_stdout = run("predict", "o/model.npz", "blobs.npy", cwd=folder)
    np.testing.assert_array_equal([int(v) for v in to_stdout.stdout.split()], fitted_labels)


def test_predict_checks_a_tables_header_against_the_models_columns(data_files):
    folder, X = data_files
    assert run("fit", "header.csv", "-k", "3", "--out", "o", "--quiet", cwd=folder).returncode == 0
    fitted_labels = np.load(folder / "o" / "labels.npy")
    for same in ("header.csv", "plain.csv", "blobs.npy"):  # the same names, or none to check
        done = run("predict", "o/model.npz", same, "--out", "p.npy", cwd=folder)
        assert done.returncode == 0, done.stderr
        assert "warning" not in done.stderr.lower()
        np.testing.assert_array_equal(np.load(folder / "p.npy"), fitted_labels)
    np.savetxt(folder / "swapped.csv", X[:, ::-1], delimiter=",", header="y,x", comments="")
    swapped = run("predict", "o/model.npz", "swapped.csv", cwd=folder)
    assert swapped.returncode != 0
    assert "swapped.csv's header names the columns ['y', 'x'], but the model" in swapped.stderr
    assert "fitted on columns ['x', 'y']" in swapped.stderr


def test_torch_backend(data_files):
    pytest.importorskip("torch")
    folder, X = data_files
    result = run("fit", "blobs.npy", "-k", "3", "--backend", "torch", "--json", "--out", "o",
                 cwd=folder)  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["backend"].startswith("torch")
    expected = KMeans(n_clusters=3, random_state=0).fit(X)
    assert summary["inertia"] == pytest.approx(expected.inertia_, rel=1e-9)


def _has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------------------------
# Bad input: one line on stderr, exit status 2, no traceback
# --------------------------------------------------------------------------------------------

BAD_FILES = {
    "empty.csv": ("", "the file is empty"),
    "blank.csv": ("\n\n", "holds no rows"),
    "header_only.csv": ("a,b\n", "header but no data rows"),
    "text.csv": ("a,b\n1,2\n3,abc\n", "line 3, column 'b' (2): 'abc' is not a number"),
    "gap.csv": ("1,2\n3,\n", "line 2, column 2: 'an empty field' is not a number"),
    "ragged.csv": ("1,2\n3,4,5\n", "line 2 has 3 fields, expected 2"),
    "nan.csv": ("1,2\nnan,4\n", "1 NaN or infinite value(s), the first at row 2, column 1"),
    "data.txt": ("1 2\n", "unsupported file type '.txt'"),
    "latin1.csv": (b"a,\xe9\n1,2\n", "not a UTF-8 text table"),
    # A typo in the first row makes it neither data nor a header: refused, not dropped.
    "typo.csv": ("1.0,2.O\n3,4\n", "line 1, column 2: '2.O' is not a number, but other"),
    # Numbers as CSV writes them: no digit-group underscores, no other scripts' digits.
    "underscore.csv": ("1,2\n1_000,4\n", "line 2, column 1: '1_000' is not a number"),
    "arabic.csv": ("1,2\n\u0663,4\n", "line 2, column 1: '\u0663' is not a number"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_input_files(tmp_path, name):
    content, message = BAD_FILES[name]
    if isinstance(content, bytes):
        (tmp_path / name).write_bytes(content)
    else:
        (tmp_path / name).write_text(content)
    result = run("fit", name, "-k", "2", cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"kmeans-xp: error: {name}: ")
    assert message in lines[0]
    assert "Traceback" not in result.stderr


def test_an_npy_header_declaring_more_than_the_file_holds_is_one_error_line(tmp_path):
    """A 236-byte .npy whose header declares 10**12 x 2 float64 values: refused from its
    header, before any allocation (it was a MemoryError traceback)."""
    header = {"descr": "<f8", "fortran_order": False, "shape": (10**12, 2)}
    with open(tmp_path / "huge.npy", "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
    result = run("fit", "huge.npy", "-k", "2", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "kmeans-xp: error: huge.npy: the header declares shape (1000000000000, 2) of float64 "
        "(16000000000000 bytes), but the file holds 0 bytes of data."
    ]


def test_a_closed_pipe_ends_predict_quietly(data_files):
    """``kmeans-xp predict ... | head``: when the reader goes away, no error and no traceback."""
    folder, _ = data_files
    assert run("fit", "blobs.npy", "-k", "3", "--out", "o", "--quiet", cwd=folder).returncode == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "kmeans_xp", "predict", "o/model.npz", "blobs.npy", "--json"],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # the reader is gone before the first line
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait() == 141
    assert stderr == ""


def test_bad_npy_files(tmp_path):
    np.save(tmp_path / "flat.npy", np.arange(5.0))
    np.save(tmp_path / "strings.npy", np.array([["a", "b"]]))
    np.save(tmp_path / "objects.npy", np.array([[{}]], dtype=object), allow_pickle=True)
    np.save(tmp_path / "inf.npy", np.array([[1.0, np.inf]]))
    expected = {
        "flat.npy": "expected a 2-D array",
        "strings.npy": "holds <U1, not numbers",
        "objects.npy": "not a readable .npy array",
        "inf.npy": "NaN or infinite",
    }
    for name, message in expected.items():
        result = run("fit", name, "-k", "1", cwd=tmp_path)
        assert result.returncode == 2, name
        assert message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_other_bad_input(data_files):
    folder, _ = data_files
    (folder / "damaged.npz").write_bytes(b"PK\x03\x04 not really a zip")
    np.save(folder / "three.npy", np.ones((4, 3)))
    assert run("fit", "blobs.npy", "-k", "3", "--out", "o", "--quiet", cwd=folder).returncode == 0
    cases = [
        (["fit", "missing.csv", "-k", "2"], "missing.csv: no such file"),
        (["fit", "blobs.npy", "-k", "151"], "-k 151 is larger than the 150 rows of blobs.npy"),
        (["fit", "blobs.npy", "-k", "0"], "n_clusters must be >= 1"),
        (["elbow", "blobs.npy", "--k", "100:200"], "k_range must lie within 1..n_samples=150"),
        (["elbow", "blobs.npy", "--sample-size", "50"], "it needs --silhouette"),
        (["fit", "blobs.npy", "-k", "2", "--n-init", "0"], "n_init must be >= 1"),
        (["predict", "damaged.npz", "blobs.npy"], "not a valid kmeans_xp model file"),
        (["predict", "missing.npz", "blobs.npy"], "No such file"),
        (
            ["predict", "o/model.npz", "three.npy"],
            "three.npy has 3 features, but the model in o/model.npz was fitted on 2",
        ),
        (["fit", "blobs.npy", "-k", "2", "--backend", "cupy"], None),  # fine where cupy runs
    ]
    for args, message in cases:
        result = run(*args, cwd=folder)
        if message is None:
            assert result.returncode in (0, 2)
            continue
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_argument_errors_exit_2_with_usage(data_files):
    folder, _ = data_files
    for args in (["fit", "blobs.npy"], ["elbow", "blobs.npy", "--k", "x"], ["fit"]):
        result = run(*args, cwd=folder)
        assert result.returncode == 2
        assert "usage: kmeans-xp" in result.stderr


def test_debug_shows_the_traceback(tmp_path):
    (tmp_path / "text.csv").write_text("1,2\n3,x\n")
    result = run("fit", "text.csv", "-k", "2", "--debug", cwd=tmp_path)
    assert result.returncode != 0
    assert "Traceback" in result.stderr
    assert "DataFileError" in result.stderr


def test_every_command_has_help(tmp_path):
    for command in ("demo", "fit", "elbow", "predict"):
        result = run(command, "--help", cwd=tmp_path)
        assert result.returncode == 0
        assert f"usage: kmeans-xp {command}" in result.stdout
    assert "kmeans-xp fit data.csv -k 5" in run("--help", cwd=tmp_path).stdout


def test_demo_json(tmp_path):
    result = run("demo", "--no-plot", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["elbow"]["suggested_k"] == 3
    assert len(data["centers"]) == 3


# --------------------------------------------------------------------------------------------
# Progress bar
# --------------------------------------------------------------------------------------------


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_draws_on_a_terminal_only():
    terminal = FakeTerminal()
    with ProgressBar(4, "work", stream=terminal) as bar:
        for _ in range(4):
            bar.update()
    text = terminal.getvalue()
    assert "[" + "#" * 30 + "] 4/4 work" in text
    assert text.endswith("\n")
    pipe = io.StringIO()
    with ProgressBar(4, "work", stream=pipe) as bar:
        bar.update()
    assert pipe.getvalue() == ""
    silenced = FakeTerminal()
    with ProgressBar(4, stream=silenced, enabled=False) as bar:
        bar.update()
    assert silenced.getvalue() == ""


def test_fit_progress_hook_sees_every_iteration():
    seen = []
    model = KMeans(n_clusters=3, n_init=2, init="random", random_state=0)
    model._fit_with_progress(
        tutorial_blobs(), None, on_iteration=lambda run, it: seen.append((run, it))
    )
    assert {run for run, _ in seen} == {0, 1}
    assert max(it for run, it in seen if run == 0) >= 1


def test_backend_choice():
    from conftest import _gpu_count

    from kmeans_xp._lib.compat import library_name, to_backend

    X = np.ones((3, 2))
    auto, where = to_backend(X, "auto")
    gpu = _gpu_count("cupy") > 0 or _gpu_count("torch") > 0
    assert (library_name(auto) != "numpy") == gpu, where
    assert to_backend(X, "numpy")[0] is X
    if _gpu_count("cupy") == 0:
        with pytest.raises(ValueError, match="backend 'cupy' needs CuPy and a usable CUDA GPU"):
            to_backend(X, "cupy")
    with pytest.raises(ValueError, match="backend must be one of auto, numpy, cupy, torch"):
        to_backend(X, "jax")


def test_predict_with_a_hostile_model_file_is_one_error_line(data_files):
    """A model file with a zip entry that is not an .npy array (an AttributeError traceback
    through ``kmeans-xp predict`` before): one error line, exit 2."""
    import zipfile

    folder, _ = data_files
    assert run("fit", "blobs.npy", "-k", "3", "--out", "o", "--quiet", cwd=folder).returncode == 0
    with zipfile.ZipFile(folder / "o" / "model.npz") as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    entries["offset.npy"] = b"not an array"
    with zipfile.ZipFile(folder / "bad.npz", "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    result = run("predict", "bad.npz", "blobs.npy", cwd=folder)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "kmeans-xp: error: bad.npz is not a valid kmeans_xp model file: offset is not an .npy "
        "array (the magic string is not correct; expected b'\\x93NUMPY', got b'not an')"
    ]
