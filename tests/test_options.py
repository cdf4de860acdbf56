"""Pass options: chosen for a block of code, restored after it, private to the thread."""

from __future__ import annotations

import threading

import pytest

from kmeans_xp._lib.options import PassOptions, current_options, pass_options


def test_options_apply_inside_the_block_and_are_restored_after():
    before = current_options()
    with pass_options(small_pass=False, sampling_chunk_rows=7) as inside:
        assert inside == current_options()
        assert (inside.small_pass, inside.sampling_chunk_rows) == (False, 7)
        assert inside.mma == before.mma  # the others as they were
        with pass_options(small_pass=True):
            assert current_options().small_pass is True
            assert current_options().sampling_chunk_rows == 7
        assert current_options().small_pass is False
    assert current_options() == before


def test_options_are_restored_when_the_block_raises():
    before = current_options()
    with pytest.raises(RuntimeError), pass_options(mma=True):
        raise RuntimeError("a failed fit")
    assert current_options() == before


def test_options_set_in_one_thread_do_not_reach_another():
    seen = []
    with pass_options(register_host_memory=False):
        worker = threading.Thread(target=lambda: seen.append(current_options()))
        worker.start()
        worker.join()
    assert seen == [PassOptions()]


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"small_pas": False}, TypeError, "small_pas"),
        ({"small_pass": 1}, TypeError, "small_pass must be bool, got 1"),
        ({"sampling_chunk_rows": True}, TypeError, "sampling_chunk_rows must be int"),
        ({"sampling_chunk_rows": 0}, ValueError, "sampling_chunk_rows must be >= 1, got 0"),
        ({"trial_distances_max_bytes": -1}, ValueError, "trial_distances_max_bytes"),
    ],
)
def test_bad_options_are_refused_naming_them(changes, error, match):
    before = current_options()
    with pytest.raises(error, match=match), pass_options(**changes):
        pass
    assert current_options() == before


def test_kernel_sources_are_read_whole_from_the_package_files():
    from kmeans_xp._backends import cuda_launch

    for source, names in (
        (cuda_launch.KERNEL_SOURCE, cuda_launch.KERNEL_NAMES),
        (cuda_launch.MMA_SOURCE, cuda_launch.MMA_KERNEL_NAMES),
    ):
        assert '#include "common.cuh"' not in source  # inlined: NVRTC gets one source
        assert "infinity<float>()" in source  # from the header
        for name in names:
            stem = name.rsplit("_", 1)[0] if name[-1].isdigit() else name
            assert stem.split("_float")[0].split("_double")[0] in source
