"""KMeans(device=...): host X copied to, or streamed in row blocks through, a device's memory."""

from __future__ import annotations

import numpy as np
import pytest

import kmeans_xp._algorithms.streaming as streaming
from kmeans_xp import KMeans, kmeans
from kmeans_xp._algorithms.streaming import HostRows
from kmeans_xp._lib.compat import get_namespace


def mixture(n=6000, d=5, k=6, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) + 6.0 * rng.integers(0, k, size=(n, 1))
    return X.astype(dtype)


def devices():
    """Devices every machine has (NumPy and torch on the CPU), then CUDA where one answers."""
    found = ["cpu"]
    try:
        import torch

        found.append(torch.device("cpu"))
        if torch.cuda.is_available():
            found.append(torch.device("cuda"))
    except ImportError:
        pass
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() > 0:
            found.append("cuda")
    except Exception:  # no CuPy, no driver
        pass
    return found


@pytest.fixture(params=devices(), ids=str)
def device(request):
    return request.param


def is_gpu(device):
    return device == "cuda" or getattr(device, "type", None) == "cuda"


@pytest.fixture
def streams(monkeypatch):
    """Record the HostRows each fit creates (and what it copied)."""
    made = []
    original = HostRows.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(HostRows, "__init__", init)
    return made


@pytest.mark.parametrize("weighted", [False, True])
def test_streamed_fit_equals_the_in_memory_fit(device, streams, weighted):
    X = mixture()
    w = np.random.default_rng(1).uniform(0.5, 2.0, size=len(X)) if weighted else None
    C0 = X[:6].copy()
    expected = KMeans(6, init=C0, algorithm="lloyd", max_iter=50).fit(X, sample_weight=w)
    # 20 000 bytes: the per-row state (6000 x 32 bytes) leaves room for blocks of ~100 rows.
    km = KMeans(6, init=C0, max_iter=50, device=device, max_device_bytes=6000 * 32 + 40_000)
    km.fit(X, sample_weight=w)
    assert len(streams) == 1
    assert streams[0].block_rows < len(X) // 10  # many blocks per pass
    assert streams[0].copy_mode == ("registered" if is_gpu(device) else "host")
    assert isinstance(km.cluster_centers_, np.ndarray)
    assert isinstance(km.labels_, np.ndarray)
    np.testing.assert_allclose(km.cluster_centers_, expected.cluster_centers_, rtol=1e-5)
    np.testing.assert_array_equal(km.labels_, expected.labels_)
    assert km.n_iter_ == expected.n_iter_
    assert km.inertia_ == pytest.approx(expected.inertia_, rel=1e-6)
    np.testing.assert_array_equal(km.predict(X), km.labels_)


@pytest.mark.parametrize("init", ["k-means++", "k-means||", "random"])
def test_streamed_inits_match_the_in_memory_ones(device, streams, init):
    from kmeans_xp._algorithms.prepare import device_state_bytes

    X = mixture(seed=2)
    expected = KMeans(6, init=init, random_state=3, algorithm="lloyd").fit(X)
    budget = device_state_bytes(6000, 6, 4, init) + 40_000  # X (120 kB) does not fit beside
    km = KMeans(6, init=init, random_state=3, device=device, max_device_bytes=budget)
    km.fit(X)
    assert len(streams) == 1
    np.testing.assert_allclose(km.cluster_centers_, expected.cluster_centers_, rtol=1e-5)
    assert km.inertia_ == pytest.approx(expected.inertia_, rel=1e-6)


def test_a_pass_copies_x_about_once(device, streams):
    """Each Lloyd iteration reads X once through the device buffers (plus the one block a
    walk's prefetch fetches past its end)."""
    X = mixture(n=8000)
    fits = {}
    for iters in (2, 6):
        km = KMeans(6, init=X[:6].copy(), max_iter=iters, tol=0, device=device,
                    max_device_bytes=8000 * 32 + 40_000)  # fmt: skip
        km.fit(X)
        fits[iters] = (km.n_iter_, streams[-1].bytes_copied)
    (n_a, bytes_a), (n_b, bytes_b) = fits[2], fits[6]
    per_iteration = (bytes_b - bytes_a) / (n_b - n_a)
    assert X.nbytes <= per_iteration <= 1.2 * X.nbytes


def test_data_that_fit_are_copied_once(device, streams):
    X = mixture()
    km = KMeans(6, random_state=0, device=device).fit(X)
    assert streams == []  # no streaming: X fits
    assert isinstance(km.cluster_centers_, np.ndarray)
    assert km.inertia_ == pytest.approx(KMeans(6, random_state=0).fit(X).inertia_, rel=1e-6)


def test_streaming_a_memmap(tmp_path, streams, device):
    X = mixture(n=5000)
    path = tmp_path / "X.npy"
    np.save(path, X)
    mapped = np.load(path, mmap_mode="r")  # read-only
    C0 = X[:6].copy()
    km = KMeans(6, init=C0, device=device, max_device_bytes=5000 * 32 + 30_000).fit(mapped)
    assert len(streams) == 1
    assert streams[0].copy_mode == ("staged" if is_gpu(device) else "host")
    expected = KMeans(6, init=C0, algorithm="lloyd").fit(X)
    np.testing.assert_allclose(km.cluster_centers_, expected.cluster_centers_, rtol=1e-5)


def test_a_streamed_fit_unlocks_x_when_it_ends(device, streams):
    """X page-locked for a streamed fit is unlocked after it, also when the fit fails: locking
    it again succeeds (the driver refuses memory already registered)."""
    from kmeans_xp._lib.compat import resolve_device

    if not is_gpu(device):
        pytest.skip("page locks are a CUDA device's")
    X = mixture()
    budget = 6000 * 32 + 40_000
    KMeans(6, init=X[:6].copy(), max_iter=3, device=device, max_device_bytes=budget).fit(X)
    with pytest.raises(ValueError, match="n_clusters"):  # fails inside the fit, X locked
        KMeans(6, init=X[:5].copy(), device=device, max_device_bytes=budget).fit(X)
    assert [rows.copy_mode for rows in streams] == ["registered"] * len(streams)
    copier = streaming._copier_for(*resolve_device(device))
    assert copier.register(X) == "registered"
    copier.release()


def test_host_rows_serve_any_walk_in_order_and_out_of_order():
    X = np.arange(700, dtype=np.float64).reshape(100, 7)
    xp = get_namespace(X)
    rows = HostRows(X, xp, "cpu", block_rows=16)
    try:
        for size in (16, 9, 16, 100):  # walks with different block sizes, each prefetching
            for start in range(0, 100, size):
                np.testing.assert_array_equal(
                    rows[start : start + size, :], X[start : start + size]
                )
        for start, stop in [(50, 60), (3, 4), (90, 100), (0, 16), (16, 32)]:  # scattered reads
            np.testing.assert_array_equal(rows[start:stop], X[start:stop])
        np.testing.assert_array_equal(rows.take(np.array([5, 0, 99])), X[[5, 0, 99]])
        with pytest.raises(TypeError, match="row blocks"):
            rows[:, 1:3]
        with pytest.raises(TypeError, match="contiguous"):
            rows[::2, :]
    finally:
        rows.close()


def test_bad_device_arguments():
    X = mixture(n=500)
    with pytest.raises(ValueError, match=r"device must be None, 'cpu', 'cuda'.*got device='tpu'"):
        KMeans(3, device="tpu").fit(X)
    with pytest.raises(ValueError, match=r"max_device_bytes .*>= 1.*got"):
        KMeans(3, device="cpu", max_device_bytes=0).fit(X)
    with pytest.raises(ValueError, match=r"max_device_bytes=1000 is too small to stream X"):
        KMeans(3, device="cpu", max_device_bytes=1000).fit(X)
    with pytest.raises(ValueError, match=r"algorithm='hamerly' gathers scattered rows"):
        KMeans(
            3, init="random", device="cpu", max_device_bytes=500 * 32 + 5000, algorithm="hamerly"
        ).fit(X)
    with pytest.raises(ValueError, match="device="):
        kmeans(X, 3, device="gpu")
    torch = pytest.importorskip("torch")
    with pytest.raises(
        TypeError, match=r"device='cpu' fits host data on a device, but X is a torch"
    ):
        KMeans(3, device="cpu").fit(torch.asarray(X))


@pytest.mark.parametrize("init", ["explicit", "random", "k-means++", "k-means||"])
def test_a_streamed_fit_stays_within_max_device_bytes(streams, init):
    """What a streamed fit allocates (its per-row state, the init's while it runs, the two block
    buffers and a pass's temporaries; X itself stays on the host) stays under max_device_bytes,
    when that leaves 200 kB beside the state the fit plans for. Measured with tracemalloc on the
    NumPy "device", whose allocations are all on the host. (k-means++ and k-means|| hold more
    per row than Lloyd: before the budget counted them, such fits passed it by 60 %.)"""
    import tracemalloc

    from kmeans_xp._algorithms.prepare import device_state_bytes

    n = 200_000
    X = mixture(n=n, d=4)
    if init == "explicit":
        init = X[:6].copy()
    budget = device_state_bytes(n, 6, 4, init) + 200_000
    km = KMeans(6, init=init, random_state=0, max_iter=5, tol=0, device="cpu")
    km.set_params(max_device_bytes=budget)
    km.fit(X)  # first-call allocations (caches) are not the fit's
    tracemalloc.start()
    km.fit(X)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(streams) == 2
    assert peak <= budget, f"{peak} bytes > max_device_bytes={budget}"


class _FakeEvent:
    def __init__(self, log, name):
        self.log, self.name = log, name

    def synchronize(self):
        self.log.append(("synchronize", self.name))


class _FakeStagedCopier(streaming._StagedCopier):
    """The GPU copiers' logic with NumPy buffers, and events and page locks that only log;
    ``refuse`` makes the page lock fail as a driver would."""

    refuse = False

    def __init__(self, xp, device):
        super().__init__(xp, device)
        self.log, self.count = [], 0

    def pinned(self, shape, dtype):
        self.log.append(("pinned", shape))
        return np.empty(shape, dtype=dtype)

    def host_view(self, staging):
        return staging

    def wrap(self, rows):
        return rows

    def lock(self, host):
        if self.refuse:
            raise RuntimeError("cudaHostRegister failed: out of memory")
        self.log.append(("lock", host.ctypes.data, host.nbytes))

    def unlock(self, host):
        self.log.append(("unlock", host.ctypes.data))

    def copy_async(self, buffer, rows, m, *, after):
        buffer[:m] = rows[:m]
        self.count += 1
        name = f"copied{self.count}"
        from_x = self.locked is not None and np.shares_memory(rows, self.locked)
        self.log.append(("copy", after.name if after else None, name, from_x))
        return _FakeEvent(self.log, name)

    def record(self):
        self.count += 1
        return _FakeEvent(self.log, f"released{self.count}")


def fit_with_fake_copier(monkeypatch, X, *, refuse=False):
    """A streamed fit (blocks of about 100 rows) through a ``_FakeStagedCopier``; returns the
    copier and HostRows' copy mode, after checking the labels against an in-memory fit."""
    made = []

    def fake(xp, device):
        made.append(_FakeStagedCopier(xp, device))
        made[-1].refuse = refuse
        return made[-1]

    modes = []
    original = HostRows.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        modes.append(self.copy_mode)

    monkeypatch.setattr(streaming, "_copier_for", fake)
    monkeypatch.setattr(HostRows, "__init__", init)
    C0 = np.array(X[:6])
    expected = KMeans(6, init=C0, algorithm="lloyd", max_iter=20).fit(np.array(X))
    km = KMeans(6, init=C0, max_iter=20, device="cpu", max_device_bytes=6000 * 32 + 40_000).fit(X)
    np.testing.assert_array_equal(km.labels_, expected.labels_)
    assert len(made) == 1
    assert len(modes) == 1
    return made[0], modes[0]


def copies_in(log):
    copies = [entry for entry in log if entry[0] == "copy"]
    assert len(copies) > 100
    assert all(after is not None and after.startswith("released") for _, after, _, _ in copies)
    return copies


@pytest.mark.parametrize("refuse", [False, True])
def test_staged_copies_wait_for_their_staging_and_order_after_release(
    tmp_path, monkeypatch, refuse
):
    """Where X cannot be page-locked in place (a memmap; or the driver refuses), GPU copiers
    stage rows in two pinned buffers: before a staging buffer is refilled its last copy is
    waited for, and every copy is ordered after the compute stream's release."""
    if refuse:
        X = mixture()
    else:
        path = tmp_path / "x.npy"
        np.save(path, mixture())
        X = np.load(path, mmap_mode="r")
    copier, mode = fit_with_fake_copier(monkeypatch, X, refuse=refuse)
    log = copier.log
    copies = copies_in(log)
    assert mode == "staged"
    assert not any(entry[0] in ("lock", "unlock") for entry in log)
    assert not any(from_x for *_, from_x in copies)
    assert sum(1 for entry in log if entry[0] == "pinned") == 2  # one staging buffer per slot
    # From the third copy on, each reuses a staging buffer: its previous copy was waited for;
    # at the end, each slot's last copy.
    assert sum(1 for entry in log if entry[0] == "synchronize") == len(copies) - 2 + 2


def test_x_in_ram_is_locked_in_place_and_copied_from_directly(monkeypatch):
    """X in process memory is page-locked once, copied from with no staging (no pinned
    buffers, no waits between copies), and unlocked at the end after its last copies ended."""
    X = mixture()
    copier, mode = fit_with_fake_copier(monkeypatch, X)
    log = copier.log
    copies = copies_in(log)
    assert mode == "registered"
    assert log[0] == ("lock", X.ctypes.data, X.nbytes)
    assert all(from_x for *_, from_x in copies)  # views of X itself
    assert not any(entry[0] == "pinned" for entry in log)
    # At the end, and only then: the last copy out of each slot waited for, then the unlock.
    assert sum(1 for entry in log if entry[0] == "synchronize") == 2
    assert sorted(log[-3:-1]) == sorted(("synchronize", name) for _, _, name, _ in copies[-2:])
    assert log[-1] == ("unlock", X.ctypes.data)


def test_only_ordinary_writable_contiguous_memory_is_locked_in_place(
    use_options, tmp_path, monkeypatch
):
    X = mixture(n=50)
    assert streaming.lockable_in_place(X)
    assert streaming.lockable_in_place(X[10:20])
    assert not streaming.lockable_in_place(X[:, :2])  # strided rows
    frozen = X.copy()
    frozen.flags.writeable = False
    assert not streaming.lockable_in_place(frozen)
    path = tmp_path / "x.npy"
    np.save(path, X)
    for mode in ("r", "r+"):
        mapped = np.load(path, mmap_mode=mode)
        assert not streaming.lockable_in_place(mapped)
        assert not streaming.lockable_in_place(np.asarray(mapped))  # a plain view of the mapping
    use_options(register_host_memory=False)
    assert streaming._StagedCopier(np, "cpu").register(X) == "staged"


@pytest.mark.parametrize("threads", [1, 4])
def test_staging_copies_rows_in_parallel_chunks(tmp_path, monkeypatch, threads):
    """The host copy into a pinned buffer, split into chunks of a few rows on several threads
    (or one): the same bytes as one copy, from a read-only memmap too."""
    monkeypatch.setattr(streaming, "STAGING_CHUNK_BYTES", 7 * 5 * 4)  # 7 rows a chunk
    monkeypatch.setattr(streaming, "STAGING_THREADS", threads)
    X = mixture(n=103, d=5)
    path = tmp_path / "x.npy"
    np.save(path, X)
    source = np.load(path, mmap_mode="r")
    target = np.full_like(X, np.nan)
    streaming.copy_rows_in_parallel(target, source)
    np.testing.assert_array_equal(target, X)
    target[:] = np.nan
    streaming.copy_rows_in_parallel(target[:3], source[:3])  # under one chunk
    np.testing.assert_array_equal(target[:3], X[:3])
    assert np.isnan(target[3:]).all()
