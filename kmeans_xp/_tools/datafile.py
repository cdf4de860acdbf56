"""Reading the command line's INPUT: a .npy array, or a .csv/.tsv table of numeric columns.

Every problem is reported as a ``DataFileError`` whose message names the file and, for text
tables, the line and column, so the command line can print it as one line.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np

__all__ = ["DataFileError", "read_matrix", "read_matrix_and_header", "write_labels"]

SUFFIXES = (".npy", ".csv", ".tsv")


class DataFileError(ValueError):
    """The input file is missing, empty, or not a numeric table."""


def read_matrix(path: str | os.PathLike) -> np.ndarray:
    """Read a 2-D float64 (or float32, from .npy) matrix of finite numbers from ``path``.

    ``.npy``: a 2-D array of numbers, read without pickle. ``.csv`` (comma) and ``.tsv`` (tab):
    one row per line, numeric columns; the first line is a header when any of its fields is not
    a number.
    """
    return read_matrix_and_header(path)[0]


def read_matrix_and_header(path: str | os.PathLike) -> tuple[np.ndarray, list[str] | None]:
    """``read_matrix``, and a table's header (its column names), None without one."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        msg = f"{path}: unsupported file type {suffix!r}; use one of {', '.join(SUFFIXES)}."
        raise DataFileError(msg)
    if not path.is_file():
        msg = f"{path}: no such file."
        raise DataFileError(msg)
    if path.stat().st_size == 0:
        msg = f"{path}: the file is empty."
        raise DataFileError(msg)
    X, header = (
        (_read_npy(path), None)
        if suffix == ".npy"
        else _read_table(path, "," if suffix == ".csv" else "\t")
    )
    bad = ~np.isfinite(X)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        msg = (
            f"{path}: {int(bad.sum())} NaN or infinite value(s), the first at row {row + 1}, "
            f"column {column + 1}; K-Means needs finite values."
        )
        raise DataFileError(msg)
    return X, header


def _read_npy(path: Path) -> np.ndarray:
    try:
        X = np.load(path, allow_pickle=False)
    except ValueError as exc:
        msg = f"{path}: not a readable .npy array of numbers ({exc})."
        raise DataFileError(msg) from None
    if not isinstance(X, np.ndarray):
        msg = f"{path}: expected a single .npy array."
        raise DataFileError(msg)
    if X.dtype.kind not in "biuf":
        msg = f"{path}: the array holds {X.dtype}, not numbers."
        raise DataFileError(msg)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        msg = f"{path}: expected a 2-D array (rows x features) with data, got shape {X.shape}."
        raise DataFileError(msg)
    return X if X.dtype in (np.float32, np.float64) else X.astype(np.float64)


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _read_table(path: Path, delimiter: str) -> tuple[np.ndarray, list[str] | None]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            text = f.read()
    except UnicodeDecodeError as exc:
        msg = f"{path}: not a UTF-8 text table (byte {exc.start} cannot be decoded)."
        raise DataFileError(msg) from None
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        msg = f"{path}: the file holds no rows."
        raise DataFileError(msg)
    first = next(csv.reader([lines[0]], delimiter=delimiter))
    has_header = not all(_is_number(field) for field in first)
    header = [field.strip() for field in first] if has_header else None
    n_data = len(lines) - has_header
    if n_data == 0:
        msg = f"{path}: the file has a header but no data rows."
        raise DataFileError(msg)
    try:  # fast path; on any problem, the careful parse below finds and names it
        X = np.loadtxt(
            io.StringIO(text),
            delimiter=delimiter,
            skiprows=int(has_header),
            ndmin=2,
            dtype=np.float64,
        )
        if X.shape == (n_data, len(first)):
            return X, header
    except ValueError:
        pass
    return _parse_carefully(path, text, delimiter, first if has_header else None), header


def _parse_carefully(path: Path, text: str, delimiter: str, header: list[str] | None) -> np.ndarray:
    rows: list[list[float]] = []
    width = None
    for line_number, fields in enumerate(csv.reader(io.StringIO(text), delimiter=delimiter), 1):
        if not fields or not "".join(fields).strip():
            continue
        if header is not None and not rows and width is None:
            width = len(header)
            continue
        if width is None:
            width = len(fields)
        if len(fields) != width:
            msg = f"{path}: line {line_number} has {len(fields)} fields, expected {width}."
            raise DataFileError(msg)
        values = []
        for column, field in enumerate(fields):
            try:
                values.append(float(field))
            except ValueError:
                name = f"{header[column]!r} ({column + 1})" if header else f"{column + 1}"
                shown = field if field.strip() else "an empty field"
                msg = f"{path}: line {line_number}, column {name}: {shown!r} is not a number."
                raise DataFileError(msg) from None
        rows.append(values)
    return np.asarray(rows, dtype=np.float64)


def write_labels(labels: np.ndarray, path: str | os.PathLike) -> None:
    """Write labels as .npy, or as text (one per line) for .csv/.txt/.tsv."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        np.save(path, labels)
    else:
        np.savetxt(path, labels, fmt="%d")
