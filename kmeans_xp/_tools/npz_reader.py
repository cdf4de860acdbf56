"""Reading an ``.npz`` model file without trusting it: a regular file only (no pipe, device or
symlink), its JSON metadata bounded in size and depth, and every array's name, dtype and shape
checked from its ``.npy`` header against what the metadata implies before a byte of it is read,
so that no entry can make ``load`` allocate or decompress more than the model it describes.

Every failure is a ``ModelFileError`` naming what was wrong.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import zipfile
from collections.abc import Callable, Iterator
from typing import IO, Any

import numpy as np

from ..exceptions import ModelFileError

# Metadata holds parameters, counts and at most feature names: far below this.
MAX_METADATA_BYTES = 4 * 2**20
# Parameters are flat; a MiniBatchKMeans generator state nests three levels down.
MAX_METADATA_DEPTH = 8

# What the metadata says an array must be: (shape, allowed dtype kinds and sizes).
Expected = dict[str, tuple[tuple[int | None, ...], Callable[[np.dtype], bool]]]


def bad_file(path: Any, why: str) -> ModelFileError:
    return ModelFileError(f"{os.fspath(path)!s} is not a valid kmeans_xp model file: {why}")


@contextlib.contextmanager
def open_regular_file(path: str | os.PathLike) -> Iterator[IO[bytes]]:
    """``path`` opened for reading, refused unless it is a regular file reached without a
    symlink (pass the link's target to load it). Opening does not block on a named pipe."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    flags |= getattr(os, "O_BINARY", 0)
    if os.path.islink(path):
        raise bad_file(path, "it is a symbolic link; load the file it points to by its own path")
    try:
        descriptor = os.open(path, flags)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise bad_file(path, f"it cannot be opened as a regular file ({exc.strerror})") from None
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise bad_file(path, "it is not a regular file (a pipe, device or folder)")
        if hasattr(os, "set_blocking"):
            os.set_blocking(descriptor, True)
        f = os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise
    with f:
        yield f


def read_metadata(path: Any, archive: zipfile.ZipFile) -> dict[str, Any]:
    """The archive's JSON metadata (a 0-d unicode ``metadata.npy``), size and depth bounded."""
    try:
        info = archive.getinfo("metadata.npy")
    except KeyError:
        raise bad_file(path, "it has no metadata entry") from None
    _check_stored(path, "metadata", info)
    if info.file_size > MAX_METADATA_BYTES * 4 + 4096:  # 4 bytes a character, and the header
        raise bad_file(path, f"its metadata entry is {info.file_size} bytes, too large")
    with archive.open(info) as entry:
        shape, dtype, fortran = _npy_header(path, "metadata", entry)
        if shape != () or dtype.kind != "U":
            raise bad_file(path, "it has no metadata entry")
        raw = _read_data(path, "metadata", entry, shape, dtype, fortran)
    try:
        metadata = json.loads(str(raw))
    except (ValueError, RecursionError) as exc:  # deep nesting, huge integers included
        raise bad_file(path, f"its metadata is not JSON this reader takes ({exc})") from None
    if _depth(metadata) > MAX_METADATA_DEPTH:
        raise bad_file(path, f"its metadata nests deeper than {MAX_METADATA_DEPTH} levels")
    if not isinstance(metadata, dict):
        raise bad_file(path, "its metadata is not a JSON object")
    return metadata


def read_arrays(path: Any, archive: zipfile.ZipFile, expected: Expected) -> dict[str, np.ndarray]:
    """The arrays named in ``expected`` (the others must not be there), each checked from its
    header: the dtype, the shape (``None``: any length, bounded by the entry's size), and an
    entry size that holds exactly that data."""
    names = {info.filename for info in archive.infolist()} - {"metadata.npy"}
    stray = sorted(name for name in names if name.removesuffix(".npy") not in expected)
    if stray:
        raise bad_file(path, f"it holds entries {stray} that a model file does not have")
    arrays = {}
    for name, (shape, dtype_ok) in expected.items():
        try:
            info = archive.getinfo(f"{name}.npy")
        except KeyError:
            continue  # optional entries are checked by the caller
        _check_stored(path, name, info)
        with archive.open(info) as entry:
            found_shape, dtype, fortran = _npy_header(path, name, entry)
            if not dtype_ok(dtype) or len(found_shape) != len(shape):
                raise bad_file(path, f"{name} has dtype {dtype} and shape {found_shape}")
            if any(w is not None and g != w for g, w in zip(found_shape, shape, strict=True)):
                raise bad_file(path, f"{name} has shape {found_shape}, expected {shape}")
            data_bytes = int(np.prod(found_shape, dtype=object)) * dtype.itemsize
            if info.file_size - entry.tell() != data_bytes:  # the header's end: known exactly
                raise bad_file(
                    path, f"{name} declares {data_bytes} bytes of data, its entry holds otherwise"
                )
            arrays[name] = _read_data(path, name, entry, found_shape, dtype, fortran)
    return arrays


def _check_stored(path: Any, name: str, info: zipfile.ZipInfo) -> None:
    """Model files store their entries uncompressed (``numpy.savez``), so an entry reads as
    many bytes as it takes in the file: a compressed one, which could expand to any size before
    its checksum is known, is refused unread."""
    if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
        raise bad_file(path, f"{name} is compressed; model files store their arrays as they are")


def _read_data(
    path: Any, name: str, entry: IO[bytes], shape: tuple[int, ...], dtype: np.dtype, fortran: bool
) -> np.ndarray:
    """The array after its header: exactly the bytes its shape and dtype need, no more."""
    size = int(np.prod(shape, dtype=object))
    data = entry.read(size * dtype.itemsize)
    if len(data) != size * dtype.itemsize:
        raise bad_file(path, f"{name} ends before its data does")
    order = "F" if fortran else "C"
    return np.frombuffer(bytearray(data), dtype=dtype).reshape(shape, order=order)


def _npy_header(path: Any, name: str, entry: IO[bytes]) -> tuple[tuple[int, ...], np.dtype, bool]:
    try:
        version = np.lib.format.read_magic(entry)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(entry)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(entry)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise bad_file(path, f"{name} is not an .npy array ({exc})") from None
    if dtype.hasobject:
        raise bad_file(path, f"{name} holds Python objects")
    return tuple(shape), dtype, bool(fortran)


def _depth(value: Any) -> int:
    """How deeply lists and objects nest in a parsed JSON value (iteratively: no recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest
