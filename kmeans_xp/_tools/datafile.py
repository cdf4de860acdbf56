"""Reading the command line's INPUT: a .npy array, or a .csv/.tsv table of numeric columns.

Every problem is reported as a ``DataFileError`` whose message names the file and, for text
tables, the line and column, so the command line can print it as one line.
"""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path

import numpy as np

__all__ = ["DataFileError", "read_matrix", "read_matrix_and_header", "write_labels"]

SUFFIXES = (".npy", ".csv", ".tsv")


class DataFileError(ValueError):
    """The input file is missing, empty, or not a numeric table."""


def read_matrix(path: str | os.PathLike) -> np.ndarray:
    """Read a 2-D float64 (or float32, from .npy) matrix of finite numbers from ``path``.

    ``.npy``: a 2-D array of numbers, read without pickle. ``.csv`` (comma) and ``.tsv`` (tab):
    one row per line, numeric columns written as in CSV (ASCII digits, sign, point, exponent);
    the first line is a header when none of its fields is a number (a first line that mixes
    numbers and text is refused).
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
    _check_npy_header(path)
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


def _check_npy_header(path: Path) -> None:
    """Refuse a .npy whose header declares more data than the file holds (a damaged file, or
    one whose shape would ask for more memory than any machine has) before reading it."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, _, dtype = read_header(f)
            data_start = f.tell()
    except ValueError as exc:
        msg = f"{path}: not a readable .npy array of numbers ({exc})."
        raise DataFileError(msg) from None
    declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
    available = path.stat().st_size - data_start
    if declared > available:
        msg = (
            f"{path}: the header declares shape {shape} of {dtype} ({declared} bytes), but the "
            f"file holds {available} bytes of data."
        )
        raise DataFileError(msg)


# A number as a CSV field holds it: ASCII digits, an optional sign, point and exponent (no
# digit-group underscores, no other scripts' digits, which Python's float() would accept), or
# nan/inf, which the finiteness check then reports by row and column.
_NUMBER = re.compile(
    r"\s*[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|nan|inf|infinity)\s*",
    re.ASCII | re.IGNORECASE,
)
# Characters a table made only of such numbers can hold; any other sends it to the careful parse.
_NUMERIC_TEXT = re.compile(r"[0-9eE+\-.,\t \r\nnaifNAIFtyTY]*", re.ASCII)


def _parse_number(field: str) -> float:
    """The field's value; ValueError where it is not a number as written in CSV."""
    if _NUMBER.fullmatch(field) is None:
        raise ValueError(field)
    return float(field)


def _is_number(field: str) -> bool:
    return _NUMBER.fullmatch(field) is not None


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
    has_header = _first_row_is_header(path, first)
    header = [field.strip() for field in first] if has_header else None
    n_data = len(lines) - has_header
    if n_data == 0:
        msg = f"{path}: the file has a header but no data rows."
        raise DataFileError(msg)
    body = text.split("\n", 1)[1] if has_header and "\n" in text else ("" if has_header else text)
    try:  # fast path; on any problem, the careful parse below finds and names it
        if _NUMERIC_TEXT.fullmatch(body) is None:
            raise ValueError("not plain ASCII numbers")
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


def _first_row_is_header(path: Path, fields: list[str]) -> bool:
    """A header is a first row none of whose fields is a number. A row that mixes numbers and
    text is a data row with a typo, not a header: it is refused, naming the field."""
    numbers = [_is_number(field) for field in fields]
    if all(numbers):
        return False
    if not any(field.strip() for field in fields):
        msg = f"{path}: line 1, column 1: 'an empty field' is not a number."
        raise DataFileError(msg)
    if not any(numbers):
        return True
    column = numbers.index(False)
    msg = (
        f"{path}: line 1, column {column + 1}: {fields[column]!r} is not a number, but other "
        "fields of line 1 are; a header row holds no numbers."
    )
    raise DataFileError(msg)


def _parse_carefully(path: Path, text: str, delimiter: str, header: list[str] | None) -> np.ndarray:
    rows: list[list[float]] = []
    width = None
    for line_number, fields in enumerate(csv.reader(io.StringIO(text), delimiter=delimiter), 1):
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue  # a blank line (a line of bare delimiters is a row of empty fields)
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
                values.append(_parse_number(field))
            except ValueError:
                name = f"{header[column]!r} ({column + 1})" if header else f"{column + 1}"
                shown = field if field.strip() else "an empty field"
                msg = f"{path}: line {line_number}, column {name}: {shown!r} is not a number."
                raise DataFileError(msg) from None
        rows.append(values)
    if not rows:
        msg = f"{path}: the file has a header but no data rows."
        raise DataFileError(msg)
    return np.asarray(rows, dtype=np.float64)


def write_labels(labels: np.ndarray, path: str | os.PathLike) -> None:
    """Write labels as .npy, or as text (one per line) for .csv/.txt/.tsv."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        np.save(path, labels)
    else:
        np.savetxt(path, labels, fmt="%d")
