"""Any bytes as a model file and any text as a CSV table end in a result or in the documented
error (ModelFileError, DataFileError), quickly and within a bounded amount of memory."""

from __future__ import annotations

import io
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kmeans_xp import KMeans, ModelFileError, load
from kmeans_xp._tools.datafile import DataFileError, read_matrix
from kmeans_xp._tools.demo import tutorial_blobs

FUZZ = settings(
    max_examples=150,
    deadline=2000,  # ms per example: a hang or a huge read fails it
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
MEMORY_LIMIT = 64 * 2**20


@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.npz"
    KMeans(n_clusters=3, random_state=0).fit(tutorial_blobs()).save(path)
    return path.read_bytes()


def _mutated(data: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    out = bytearray(data)
    for position, value in edits:
        out[position % len(out)] = value
    return bytes(out[:cut] if cut is not None else out)


def _load_within_limits(path):
    tracemalloc.start()
    try:
        try:
            model = load(path)
        except ModelFileError:
            model = None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_LIMIT
    return model


@FUZZ
@given(
    edits=st.lists(st.tuples(st.integers(0, 2**31), st.integers(0, 255)), max_size=8),
    cut=st.none() | st.integers(0, 4096),
)
def test_damaged_model_files_load_or_raise_model_file_error(tmp_path, model_bytes, edits, cut):
    path = tmp_path / "fuzzed.npz"
    path.write_bytes(_mutated(model_bytes, edits, cut))
    model = _load_within_limits(path)
    if model is not None:  # a change the checks cannot see (e.g. in zip padding): still usable
        assert model.predict(tutorial_blobs()[:3]).shape == (3,)


@FUZZ
@given(
    shape=st.tuples(st.integers(0, 2**40), st.integers(0, 2**20)),
    descr=st.sampled_from(["<f8", "<f4", "<i8", "|u1", "<U10", "|O"]),
    name=st.sampled_from(["cluster_centers", "offset", "labels", "init", "step_centers", "x"]),
)
def test_entries_with_forged_headers_are_refused_from_the_header(
    tmp_path, model_bytes, shape, descr, name
):
    """An entry whose .npy header declares any shape and dtype, with almost no data behind it:
    refused (or read, when it happens to be valid) without allocating what it declares."""
    with zipfile.ZipFile(io.BytesIO(model_bytes)) as archive:
        entries = {n: archive.read(n) for n in archive.namelist()}
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    entries[f"{name}.npy"] = header.getvalue() + b"\x00" * 64
    path = tmp_path / "forged.npz"
    with zipfile.ZipFile(path, "w") as archive:
        for entry, data in entries.items():
            archive.writestr(entry, data)
    _load_within_limits(path)


CSV_TEXT = st.text(
    alphabet=st.sampled_from(list('0123456789.,-+eE \t\nnaifxy_\u0663\u00e9"')),
    max_size=200,
)


@FUZZ
@given(text=CSV_TEXT)
def test_any_csv_text_reads_or_raises_data_file_error(tmp_path, text):
    path = tmp_path / "table.csv"
    path.write_text(text, encoding="utf-8")
    try:
        X = read_matrix(path)
    except DataFileError:
        return
    assert X.ndim == 2
    assert X.shape[0] >= 1
    assert np.all(np.isfinite(X))
