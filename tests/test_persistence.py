"""Model files (save / load, no pickle, tamper-evident) and pickling, on every backend."""

from __future__ import annotations

import json
import pickle
import sys
import zipfile

import numpy as np
import pytest

from kmeans_xp import KMeans, MiniBatchKMeans, ModelFileError, NotFittedError, load
from kmeans_xp._lib.compat import library_name
from kmeans_xp._tools.demo import tutorial_blobs


def fitted(xp, **params):
    X = xp.asarray(tutorial_blobs().astype(np.float32))
    return KMeans(n_clusters=3, random_state=0, **params).fit(X), X


def rewrite(path, change):
    """Load the archive's arrays, let ``change`` edit the dict, write it back."""
    with np.load(path) as npz:
        arrays = {name: npz[name] for name in npz.files}
    change(arrays)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def metadata_of(arrays):
    return json.loads(str(arrays["metadata"]))


def set_metadata(arrays, metadata):
    arrays["metadata"] = np.asarray(json.dumps(metadata))


def saved_model(tmp_path):
    """Path of a freshly saved NumPy model."""
    model, _ = fitted(_numpy())
    path = tmp_path / "m.npz"
    model.save(path)
    return path


def with_metadata(**fields):
    """A ``rewrite`` change that sets metadata fields (leaving the stored checksum as it was)."""

    def change(arrays):
        metadata = metadata_of(arrays)
        metadata.update(fields)
        set_metadata(arrays, metadata)

    return change


def test_save_load_round_trip_on_every_backend(xp, tmp_path):
    model, X = fitted(xp, n_init=2, max_iter=50)
    path = tmp_path / "model.npz"
    model.save(path)
    for like in (None, X):
        loaded = load(path, like=like)
        expected_library = "numpy" if like is None else library_name(X)
        assert library_name(loaded.cluster_centers_) == expected_library
        assert library_name(loaded.labels_) == expected_library
        np.testing.assert_array_equal(
            xp.to_numpy(loaded.cluster_centers_), xp.to_numpy(model.cluster_centers_)
        )
        np.testing.assert_array_equal(xp.to_numpy(loaded.labels_), xp.to_numpy(model.labels_))
        assert xp.to_numpy(loaded.cluster_centers_).dtype == np.float32
        assert loaded.inertia_ == model.inertia_
        assert loaded.n_iter_ == model.n_iter_
        assert loaded.n_features_in_ == 2
        assert loaded.get_params() == model.get_params()
        np.testing.assert_array_equal(xp.to_numpy(loaded.predict(X)), xp.to_numpy(model.predict(X)))
    if xp.name.startswith("torch") or xp.name == "cupy":
        assert load(path, like=X).cluster_centers_.device == X.device


def test_a_model_saved_from_torch_loads_as_numpy(backend_named, tmp_path):
    torch_backend = backend_named("torch")
    model, X_torch = fitted(torch_backend)
    model.save(tmp_path / "m.npz")
    loaded = load(tmp_path / "m.npz")
    X = tutorial_blobs().astype(np.float32)
    assert isinstance(loaded.cluster_centers_, np.ndarray)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X_torch).numpy())
    assert loaded.score(X) == pytest.approx(model.score(X_torch), rel=1e-6)


def test_the_file_is_an_npz_with_json_metadata_and_no_pickle(tmp_path):
    model, _ = fitted(_numpy())
    model.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as npz:
        assert sorted(npz.files) == ["cluster_centers", "labels", "metadata", "offset"]
        metadata = json.loads(str(npz["metadata"]))
    assert metadata["format"] == "kmeans_xp.KMeans"
    assert metadata["format_version"] == 1
    assert metadata["n_features_in"] == 2
    assert metadata["dtype"] == "float32"
    assert metadata["inertia"] == model.inertia_
    assert metadata["params"]["n_clusters"] == 3
    assert len(metadata["sha256"]) == 64
    with zipfile.ZipFile(tmp_path / "m.npz") as z:
        assert all(name.endswith(".npy") for name in z.namelist())


def test_an_explicit_init_array_is_kept(tmp_path):
    X = tutorial_blobs()
    init = X[[0, 60, 120]]
    model = KMeans(n_clusters=3, init=init).fit(X)
    model.save(tmp_path / "m.npz")
    loaded = load(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded.init, init)
    np.testing.assert_array_equal(loaded.cluster_centers_, model.cluster_centers_)


def test_callable_init_cannot_be_saved_and_generators_are_not_kept(tmp_path):
    X = tutorial_blobs()
    model = KMeans(n_clusters=3, init=lambda X, k, rng: X[:k], n_init=1).fit(X)
    with pytest.raises(TypeError, match="init is a callable, and a model file never stores code"):
        model.save(tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()
    model = KMeans(n_clusters=3, random_state=np.random.default_rng(0)).fit(X)
    model.save(tmp_path / "g.npz")
    assert load(tmp_path / "g.npz").random_state is None


def test_an_unfitted_model_cannot_be_saved(tmp_path):
    with pytest.raises(NotFittedError):
        KMeans().save(tmp_path / "m.npz")


def _numpy():
    from conftest import _backend

    return _backend("numpy")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a["cluster_centers"].__setitem__((0, 0), 99.0), "checksum does not match"),
        (lambda a: a["labels"].__setitem__(0, 2), "checksum does not match"),
        (lambda a: a.pop("offset"), "holds arrays"),
        (lambda a: a.__setitem__("extra", np.zeros(3)), r"holds entries \['extra.npy'\]"),
        (lambda a: a.pop("metadata"), "no metadata entry"),
        (lambda a: a.__setitem__("metadata", np.asarray("{not json")), "metadata is not JSON"),
        (lambda a: a.__setitem__("metadata", np.asarray("{}")), "does not name the format"),
    ],
)
def test_a_tampered_or_damaged_file_is_rejected(tmp_path, change, message):
    path = saved_model(tmp_path)
    rewrite(path, change)
    with pytest.raises(ModelFileError, match=message):
        load(path)


def test_edited_metadata_is_caught_by_the_checksum(tmp_path):
    path = saved_model(tmp_path)
    rewrite(path, with_metadata(inertia=0.0))
    with pytest.raises(ModelFileError, match="checksum does not match"):
        load(path)


def test_a_consistent_but_invalid_file_is_rejected(tmp_path):
    """A forged file with a recomputed checksum still has to make sense."""
    from kmeans_xp._estimators.state import digest as _digest

    path = saved_model(tmp_path)

    def forge(arrays):
        arrays["labels"][0] = 7  # a label outside 0..2
        metadata = metadata_of(arrays)
        del metadata["sha256"]
        data = {k: v for k, v in arrays.items() if k != "metadata"}
        metadata["sha256"] = _digest(data, metadata)
        set_metadata(arrays, metadata)

    rewrite(path, forge)
    with pytest.raises(ModelFileError, match=r"labels fall outside 0..2"):
        load(path)


def test_a_newer_format_version_asks_for_an_upgrade(tmp_path):
    path = saved_model(tmp_path)
    rewrite(path, with_metadata(format_version=99))
    with pytest.raises(ModelFileError, match=r"format version 99.*Upgrade kmeans_xp"):
        load(path)


def test_files_that_are_not_models(tmp_path):
    (tmp_path / "garbage.npz").write_bytes(b"not a zip at all")
    with pytest.raises(ModelFileError, match=r"not an \.npz archive"):
        load(tmp_path / "garbage.npz")
    np.save(tmp_path / "array.npy", np.zeros(3))
    with pytest.raises(ModelFileError, match=r"not an \.npz archive"):
        load(tmp_path / "array.npy")
    # An object array would need unpickling: it is refused, never executed.
    with open(tmp_path / "pickled.npz", "wb") as f:
        np.savez(f, metadata=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ModelFileError, match="metadata holds Python objects"):
        load(tmp_path / "pickled.npz")
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.npz")


def test_like_must_be_an_array():
    with pytest.raises(TypeError, match=r"like must be an array .* got object"):
        load("whatever.npz", like=object())


def test_pickling_the_estimator_on_every_backend(xp):
    model, X = fitted(xp)
    model.predict(X)  # fills the per-library cache, which is not pickled
    clone = pickle.loads(pickle.dumps(model))
    assert clone._fitted_cache == {}
    np.testing.assert_array_equal(xp.to_numpy(clone.predict(X)), xp.to_numpy(model.predict(X)))
    assert library_name(clone.cluster_centers_) == library_name(X)
    assert clone.inertia_ == model.inertia_


def test_kmeans_parallel_parameters_survive_a_model_file(tmp_path):
    X = np.random.default_rng(0).normal(size=(60, 2))
    model = KMeans(
        3, init="k-means||", n_rounds=np.int64(3), oversampling_factor=np.float32(1.5),
        random_state=0,
    ).fit(X)  # fmt: skip
    model.save(tmp_path / "m.npz")
    params = load(tmp_path / "m.npz").get_params()
    assert (params["init"], params["n_rounds"], params["oversampling_factor"]) == (
        "k-means||",
        3,
        1.5,
    )


def test_feature_names_survive_a_model_file(tmp_path):
    pd = pytest.importorskip("pandas")
    from kmeans_xp._estimators.state import digest as _digest

    frame = pd.DataFrame(tutorial_blobs(), columns=["width", "height"])
    KMeans(3, random_state=0).fit(frame).save(tmp_path / "named.npz")
    model = load(tmp_path / "named.npz")
    assert model.feature_names_in_.tolist() == ["width", "height"]
    with pytest.raises(ValueError, match=r"feature names should match"):
        model.predict(frame.rename(columns={"height": "depth"}))
    KMeans(3, random_state=0).fit(tutorial_blobs()).save(tmp_path / "plain.npz")
    assert not hasattr(load(tmp_path / "plain.npz"), "feature_names_in_")

    def forge(arrays):
        metadata = metadata_of(arrays)
        del metadata["sha256"]
        metadata["feature_names_in"] = ["width"]  # one name for two features
        data = {k: v for k, v in arrays.items() if k != "metadata"}
        metadata["sha256"] = _digest(data, metadata)
        set_metadata(arrays, metadata)

    rewrite(tmp_path / "named.npz", forge)
    with pytest.raises(ModelFileError, match=r"feature_names_in \['width'\] is not a list of 2"):
        load(tmp_path / "named.npz")


def forged(change):
    """A ``rewrite`` change that edits the arrays and metadata, then recomputes the checksum."""
    from kmeans_xp._estimators.state import digest as _digest

    def forge(arrays):
        metadata = metadata_of(arrays)
        del metadata["sha256"]
        change(arrays, metadata)
        data = {k: v for k, v in arrays.items() if k != "metadata"}
        metadata["sha256"] = _digest(data, metadata)
        set_metadata(arrays, metadata)

    return forge


def batches(X, seed, n_batches=6, size=40):
    rng = np.random.default_rng(seed)
    return [X[rng.integers(0, X.shape[0], size)] for _ in range(n_batches)]


def test_a_saved_minibatch_model_goes_on_as_the_saved_one_would_on_every_backend(xp, tmp_path):
    """The step state and the generator's state are in the file: after load, the same batches
    give the same centers, counts and steps (reassignments draw from the restored generator)."""
    X = tutorial_blobs().astype(np.float32)
    # Eight centers on three blobs: some absorb little weight, and are reassigned at random.
    model = MiniBatchKMeans(8, batch_size=30, random_state=0, reassignment_ratio=0.9)
    model.fit(xp.asarray(X))
    path = tmp_path / "mb.npz"
    model.save(path)
    loaded = load(path, like=xp.asarray(X[:1]))
    reseeded = load(path, like=xp.asarray(X[:1]))
    reseeded._rng = np.random.default_rng(123)
    assert type(loaded) is MiniBatchKMeans
    assert loaded.get_params() == model.get_params()
    for name in ("n_steps_", "n_iter_", "inertia_", "n_features_in_"):
        assert getattr(loaded, name) == getattr(model, name)
    np.testing.assert_array_equal(xp.to_numpy(loaded.labels_), xp.to_numpy(model.labels_))
    for batch in batches(X, seed=1):
        for m in (model, loaded, reseeded):
            m.partial_fit(xp.asarray(batch))
        np.testing.assert_array_equal(
            xp.to_numpy(loaded.cluster_centers_), xp.to_numpy(model.cluster_centers_)
        )
    np.testing.assert_array_equal(xp.to_numpy(loaded._counts), xp.to_numpy(model._counts))
    assert loaded.n_steps_ == model.n_steps_
    # Another generator gives other centers: the draws mattered, and the file restored them.
    assert not np.array_equal(
        xp.to_numpy(reseeded.cluster_centers_), xp.to_numpy(model.cluster_centers_)
    )


def test_a_partial_fit_model_without_labels_and_a_randomstate_survives_a_file(tmp_path):
    X = tutorial_blobs()
    model = MiniBatchKMeans(
        8, compute_labels=False, random_state=np.random.RandomState(5), reassignment_ratio=0.9
    )
    for batch in batches(X, seed=2, n_batches=3):
        model.partial_fit(batch)
    model.save(tmp_path / "mb.npz")
    loaded = load(tmp_path / "mb.npz")
    for name in ("labels_", "inertia_", "n_iter_"):
        assert not hasattr(loaded, name)
    assert loaded.random_state is None  # the parameter; the generator's state is kept
    assert isinstance(loaded._rng, np.random.RandomState)
    reseeded = load(tmp_path / "mb.npz")
    reseeded._rng = np.random.RandomState(99)
    for batch in batches(X, seed=3):
        for m in (model, loaded, reseeded):
            m.partial_fit(batch)
    np.testing.assert_array_equal(loaded.cluster_centers_, model.cluster_centers_)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert not np.array_equal(reseeded.cluster_centers_, model.cluster_centers_)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a, m: a["step_weight_sums"].__setitem__(0, -1.0), r"negative values"),
        (lambda a, m: a["step_centers"].__setitem__((0, 0), np.nan), r"NaN or infinite"),
        (lambda a, m: m["minibatch"].__setitem__("batch_size", 0), r"mini-batch state"),
        (lambda a, m: m["minibatch"]["rng"]["state"].__setitem__("bit_generator", "os"),
         r"random generator state cannot be restored .*unknown bit generator 'os'"),
        (lambda a, m: m["params"].__setitem__("device", {"jax": 0}), r"device parameter"),
    ],
)  # fmt: skip
def test_a_forged_minibatch_file_is_rejected(tmp_path, change, message):
    MiniBatchKMeans(3, random_state=0).fit(tutorial_blobs()).save(tmp_path / "mb.npz")
    rewrite(tmp_path / "mb.npz", forged(change))
    with pytest.raises(ModelFileError, match=message):
        load(tmp_path / "mb.npz")


def test_a_torch_device_parameter_survives_a_model_file(backend_named, tmp_path):
    torch = backend_named("torch").module
    X = tutorial_blobs()
    model = KMeans(3, random_state=0, device=torch.device("cpu")).fit(X)
    model.save(tmp_path / "m.npz")  # before: 'Object of type device is not JSON serializable'
    loaded = load(tmp_path / "m.npz")
    assert loaded.device == torch.device("cpu")
    assert isinstance(loaded.cluster_centers_, np.ndarray)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_device_objects_are_stored_by_name_and_loaded_as_names_without_their_library(
    monkeypatch,
):
    from kmeans_xp._estimators.state import device_from_json, json_param

    cupy = pytest.importorskip("cupy")  # a Device object needs no GPU to exist
    stored = json_param("device", cupy.cuda.Device(1))
    assert stored == {"cupy": 1}
    assert device_from_json(stored).id == 1
    for library in ("torch", "cupy"):
        monkeypatch.setitem(sys.modules, library, None)  # import fails: not installed here
    assert device_from_json({"torch": "cuda:1"}) == "cuda:1"
    assert device_from_json({"cupy": 3}) == "cuda:3"
    assert device_from_json("cpu") == "cpu"
    with pytest.raises(TypeError, match=r"device=object\(\) cannot be stored in a model file"):
        json_param("device", _Opaque())


class _Opaque:
    def __repr__(self) -> str:
        return "object()"


def _small_model():
    return KMeans(n_clusters=3, random_state=0).fit(tutorial_blobs())


def test_a_save_that_fails_midway_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    """The file is written aside and renamed over the old one: an exception while writing
    leaves the old file byte for byte, and no temporary file behind."""
    path = tmp_path / "model.npz"
    model = _small_model()
    model.save(path)
    before = path.read_bytes()
    real_savez = np.savez

    def fails_midway(file, *args, **kwargs):
        real_savez(file, *args, **kwargs)
        file.truncate(len(before) // 2)
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", fails_midway)
    with pytest.raises(OSError, match="disk full"):
        KMeans(n_clusters=2, random_state=1).fit(tutorial_blobs()).save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]
    np.testing.assert_array_equal(load(path).cluster_centers_, model.cluster_centers_)


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
def test_a_save_replaces_a_symlink_and_leaves_its_target(tmp_path):
    target, link = tmp_path / "kept.npz", tmp_path / "link.npz"
    _small_model().save(target)
    before = target.read_bytes()
    link.symlink_to(target)
    KMeans(n_clusters=2, random_state=1).fit(tutorial_blobs()).save(link)
    assert target.read_bytes() == before
    assert not link.is_symlink()
    assert load(link).n_clusters == 2


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_a_killed_save_never_leaves_a_broken_file(tmp_path):
    """A child process saving a 32 MB model again and again is killed at random moments: the
    file at the path always loads (the last complete save, whichever it was)."""
    import signal
    import subprocess
    import time

    path = tmp_path / "model.npz"
    script = (
        "import sys, numpy as np\n"
        "from kmeans_xp import KMeans\n"
        "from kmeans_xp._tools.demo import tutorial_blobs\n"
        "model = KMeans(n_clusters=3, random_state=0).fit(tutorial_blobs())\n"
        "model.labels_ = np.zeros(4_000_000, dtype=np.int64)\n"
        "while True:\n"
        "    model.save(sys.argv[1])\n"
    )
    rng = np.random.default_rng(0)
    for _ in range(4):
        child = subprocess.Popen([sys.executable, "-c", script, str(path)])
        try:
            deadline = time.monotonic() + 60
            while not path.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(float(rng.uniform(0.05, 0.6)))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
        model = load(path)
        assert model.labels_.shape == (4_000_000,)


# ---- hostile files: every one ends in ModelFileError, before any large read ------------------


def _raw_archive(path, entries):
    """An .npz-like zip of raw ``entries`` {name: bytes}, stored uncompressed."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)


def _npy_bytes(array):
    import io

    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _entries_of(path):
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_an_entry_that_is_not_an_npy_array_is_refused(tmp_path):
    path = saved_model(tmp_path)
    entries = _entries_of(path)
    entries["offset.npy"] = b"raw bytes, no .npy header"
    _raw_archive(path, entries)
    with pytest.raises(ModelFileError, match=r"offset is not an \.npy array"):
        load(path)


def test_a_declared_shape_larger_than_the_entry_is_refused_before_reading(tmp_path):
    """A labels header declaring 10**12 values in a few hundred bytes: refused from the header
    (it was a MemoryError)."""
    path = saved_model(tmp_path)
    entries = _entries_of(path)
    import io

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<i8", "fortran_order": False, "shape": (10**12,)}
    )
    entries["labels.npy"] = header.getvalue()
    _raw_archive(path, entries)
    with pytest.raises(ModelFileError, match=r"labels declares 8000000000000 bytes"):
        load(path)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("bomb.npy", r"entries \['bomb.npy'\]"),  # an entry a model file does not have
        ("labels.npy", r"labels is compressed"),  # a known entry, consistent with its header
    ],
)
def test_a_zip_bomb_entry_is_refused_without_decompressing_it(tmp_path, name, message):
    """An entry of 64 MiB of zeros that compresses to almost nothing: refused before anything
    is decompressed (all entries were decompressed first, then checked)."""
    import tracemalloc

    path = saved_model(tmp_path)
    entries = _entries_of(path)
    entries.pop(name, None)
    with zipfile.ZipFile(path, "w") as archive:
        for entry, data in entries.items():
            archive.writestr(entry, data)
        bomb = np.zeros(8 * 2**20, dtype=np.int64)
        archive.writestr(name, _npy_bytes(bomb), compress_type=zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < 2**20
    tracemalloc.start()
    with pytest.raises(ModelFileError, match=message):
        load(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 8 * 2**20


@pytest.mark.parametrize(
    ("metadata_text", "message"),
    [
        ("[" * 100_000 + "]" * 100_000, "metadata is not JSON this reader takes"),
        ('{"a": ' + "9" * 5000 + "}", "metadata is not JSON this reader takes"),
        (json.dumps({"a": [[[[[[[[[[1]]]]]]]]]]}), "nests deeper than 8 levels"),
    ],
)
def test_metadata_json_is_bounded_in_depth_and_numbers(tmp_path, metadata_text, message):
    path = saved_model(tmp_path)
    entries = _entries_of(path)
    entries["metadata.npy"] = _npy_bytes(np.asarray(metadata_text))
    _raw_archive(path, entries)
    with pytest.raises(ModelFileError, match=message):
        load(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a, m: m["params"].__setitem__("max_iter", -5), r"max_iter must be"),
        (lambda a, m: m["params"].__setitem__("algorithm", "bogus"), r"algorithm must be one of"),
        (lambda a, m: m["params"].__setitem__("random_state", "abc"), r"random_state"),
        (lambda a, m: m["params"].__setitem__("n_clusters", True), r"n_clusters"),
        (lambda a, m: m.__setitem__("dtype", "float16"), r"dtype 'float16' is not the centers'"),
        (lambda a, m: m["params"].__setitem__("copy_x", "yes"), r"copy_x must be True or False"),
    ],
)
def test_every_parameter_is_checked_as_fit_checks_it(tmp_path, change, message):
    """Fields edited with the checksum recomputed: the checksum guards against accidents, the
    estimator's own checks against edits."""
    path = saved_model(tmp_path)
    rewrite(path, forged(change))
    with pytest.raises(ModelFileError, match=message):
        load(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda a, m: m["minibatch"]["rng"]["state"].__setitem__(
                "bit_generator", "BitGenerator"
            ),
            r"random generator state cannot be restored",
        ),
        (
            lambda a, m: m["minibatch"]["rng"]["state"]["state"].__setitem__("state", 10**40),
            r"random generator state cannot be restored",
        ),
        (
            lambda a, m: m["minibatch"]["rng"]["state"]["state"].__setitem__(
                "state", {"array": [1], "dtype": "O"}
            ),
            r"random generator state cannot be restored",
        ),
    ],
)
def test_a_forged_generator_state_is_a_model_file_error(tmp_path, change, message):
    MiniBatchKMeans(3, random_state=0).fit(tutorial_blobs()).save(tmp_path / "mb.npz")
    rewrite(tmp_path / "mb.npz", forged(change))
    with pytest.raises(ModelFileError, match=message):
        load(tmp_path / "mb.npz")


@pytest.mark.skipif(sys.platform == "win32", reason="named pipes and symlinks are POSIX here")
def test_load_reads_regular_files_only_and_follows_no_symlink(tmp_path):
    import os

    path = saved_model(tmp_path)
    os.mkfifo(tmp_path / "pipe.npz")
    with pytest.raises(ModelFileError, match="not a regular file"):
        load(tmp_path / "pipe.npz")  # opened without blocking, then refused
    (tmp_path / "link.npz").symlink_to(path)
    with pytest.raises(ModelFileError, match="symbolic link"):
        load(tmp_path / "link.npz")
    assert load(os.path.realpath(tmp_path / "link.npz")).n_clusters == 3
