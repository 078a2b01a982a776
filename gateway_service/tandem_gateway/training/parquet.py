"""Read the flat Parquet files that training data ships in (training time only).

prompt-security-fuzzer bundles its prompt-injection rows as one 24 KB Parquet
file. The usual readers (pyarrow, ~40 MB wheel; fastparquet, which pulls in
pandas) are far more than reading one small file needs, so this module reads
the subset of the format such files use, and refuses anything else with a
``ParquetError`` that names what it met:

- flat schemas (no nested groups), required or optional columns;
- data pages v1 with PLAIN values (INT32, INT64, DOUBLE, BYTE_ARRAY, BOOLEAN)
  and RLE/bit-packed definition levels;
- UNCOMPRESSED, SNAPPY or GZIP pages.

Dictionary-encoded columns, data pages v2 and repeated fields raise.
Format: https://parquet.apache.org/docs/file-format/ (Thrift compact protocol
for the footer and the page headers).
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from typing import Any

MAGIC = b"PAR1"
# Thrift compact protocol field types.
_STOP, _TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(
    13
)
_UNCOMPRESSED, _SNAPPY, _GZIP = 0, 1, 2
_BOOLEAN, _INT32, _INT64, _INT96, _FLOAT, _DOUBLE_T, _BYTE_ARRAY = range(7)
_PLAIN = 0
_DATA_PAGE, _DICTIONARY_PAGE = 0, 2
_OPTIONAL = 1
_REPEATED = 2


class ParquetError(ValueError):
    """The file is not Parquet, or uses a part of the format this reader does not."""


class _Thrift:
    """A cursor over Thrift compact-protocol bytes; structs decode to {field id: value}."""

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def byte(self) -> int:
        b = self.data[self.pos]
        self.pos += 1
        return b

    def varint(self) -> int:
        shift = result = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def value(self, kind: int) -> Any:
        if kind in (_TRUE, _FALSE):
            return kind == _TRUE
        if kind == _BYTE:
            return self.byte()
        if kind in (_I16, _I32, _I64):
            return self.zigzag()
        if kind == _DOUBLE:
            (d,) = struct.unpack_from("<d", self.data, self.pos)
            self.pos += 8
            return d
        if kind == _BINARY:
            n = self.varint()
            raw = self.data[self.pos : self.pos + n]
            self.pos += n
            return raw
        if kind in (_LIST, _SET):
            head = self.byte()
            size, element = head >> 4, head & 0x0F
            if size == 15:
                size = self.varint()
            if element in (_TRUE, _FALSE):
                return [self.byte() == _TRUE for _ in range(size)]
            return [self.value(element) for _ in range(size)]
        if kind == _MAP:
            size = self.varint()
            if not size:
                return {}
            types = self.byte()
            return {self.value(types >> 4): self.value(types & 0x0F) for _ in range(size)}
        if kind == _STRUCT:
            return self.struct()
        raise ParquetError(f"unknown Thrift type {kind} at byte {self.pos}")

    def struct(self) -> dict[int, Any]:
        fields: dict[int, Any] = {}
        last = 0
        while True:
            head = self.byte()
            kind = head & 0x0F
            if kind == _STOP:
                return fields
            delta = head >> 4
            last = last + delta if delta else self.zigzag()
            fields[last] = self.value(kind)


def snappy_decompress(data: bytes) -> bytes:
    """Raw (unframed) Snappy, the block format Parquet pages use."""
    src = _Thrift(data)
    size = src.varint()
    out = bytearray()
    pos = src.pos
    while pos < len(data):
        tag = data[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:  # literal
            length = tag >> 2
            if length >= 60:
                extra = length - 59
                length = int.from_bytes(data[pos : pos + extra], "little")
                pos += extra
            length += 1
            out += data[pos : pos + length]
            pos += length
            continue
        if kind == 1:
            length = 4 + ((tag >> 2) & 7)
            offset = ((tag >> 5) << 8) | data[pos]
            pos += 1
        else:
            width = 2 if kind == 2 else 4
            length = (tag >> 2) + 1
            offset = int.from_bytes(data[pos : pos + width], "little")
            pos += width
        if not 0 < offset <= len(out):
            raise ParquetError(f"corrupt Snappy block: copy offset {offset} of {len(out)}")
        start = len(out) - offset
        for i in range(length):  # copies may overlap what they write
            out.append(out[start + i])
    if len(out) != size:
        raise ParquetError(f"corrupt Snappy block: {len(out)} bytes, header says {size}")
    return bytes(out)


def _decompress(codec: int, data: bytes) -> bytes:
    if codec == _UNCOMPRESSED:
        return data
    if codec == _SNAPPY:
        return snappy_decompress(data)
    if codec == _GZIP:
        return gzip.decompress(data)
    raise ParquetError(f"compression codec {codec} is not supported")


def _levels(data: bytes, pos: int, count: int) -> tuple[list[int], int]:
    """Definition levels of bit width 1 (a flat optional column), RLE/bit-packed hybrid."""
    (length,) = struct.unpack_from("<I", data, pos)
    cursor = _Thrift(data, pos + 4)
    end = pos + 4 + length
    levels: list[int] = []
    while len(levels) < count and cursor.pos < end:
        header = cursor.varint()
        if header & 1:  # bit-packed groups of 8
            groups = header >> 1
            for b in data[cursor.pos : cursor.pos + groups]:
                levels += [(b >> i) & 1 for i in range(8)]
            cursor.pos += groups
        else:
            levels += [cursor.byte()] * (header >> 1)
    return levels[:count], end


def _plain(kind: int, data: bytes, pos: int, count: int) -> list[Any]:
    values: list[Any] = []
    if kind == _BYTE_ARRAY:
        for _ in range(count):
            (n,) = struct.unpack_from("<I", data, pos)
            values.append(data[pos + 4 : pos + 4 + n])
            pos += 4 + n
        return values
    fmt = {_INT32: "<i", _INT64: "<q", _DOUBLE_T: "<d", _FLOAT: "<f"}.get(kind)
    if fmt is not None:
        return [
            v for (v,) in struct.iter_unpack(fmt, data[pos : pos + count * struct.calcsize(fmt)])
        ]
    if kind == _BOOLEAN:
        return [bool((data[pos + i // 8] >> (i % 8)) & 1) for i in range(count)]
    raise ParquetError(f"physical type {kind} is not supported")


@dataclass(frozen=True, slots=True)
class _Column:
    name: str
    kind: int
    optional: bool
    text: bool


def _schema(elements: list[dict[int, Any]]) -> list[_Column]:
    root, leaves = elements[0], elements[1:]
    if root.get(5, 0) != len(leaves) or any(e.get(5) for e in leaves):
        raise ParquetError("nested schemas are not supported")
    columns = []
    for e in leaves:
        if e.get(3) == _REPEATED:
            raise ParquetError(f"repeated column {e[4]!r} is not supported")
        # converted_type 0 is UTF8; logicalType field 1 is STRING
        text = e.get(6) == 0 or 1 in e.get(10, {})
        columns.append(_Column(e[4].decode(), e.get(1, -1), e.get(3) == _OPTIONAL, text))
    return columns


def _column_values(data: bytes, chunk: dict[int, Any], column: _Column) -> list[Any]:
    meta = chunk[3]
    codec, total, pos = meta[4], meta[5], meta[9]
    dictionary = meta.get(11)
    if dictionary is not None and 0 < dictionary < pos:
        pos = dictionary  # a dictionary page comes first: read it, to name it
    values: list[Any] = []
    while len(values) < total:
        page = _Thrift(data, pos)
        header = page.struct()
        body = data[page.pos : page.pos + header[3]]
        pos = page.pos + header[3]
        if header[1] == _DICTIONARY_PAGE:
            raise ParquetError(f"column {column.name!r} is dictionary-encoded")
        if header[1] != _DATA_PAGE:
            raise ParquetError(f"page type {header[1]} in {column.name!r} is not supported")
        info = header[5]
        count, encoding = info[1], info[2]
        if encoding != _PLAIN:
            raise ParquetError(f"encoding {encoding} in {column.name!r} is not supported")
        raw = _decompress(codec, body)
        at = 0
        defined = [1] * count
        if column.optional:
            defined, at = _levels(raw, 0, count)
        present = iter(_plain(column.kind, raw, at, sum(defined)))
        values += [next(present) if d else None for d in defined]
    if column.text:
        return [v.decode("utf-8") if v is not None else None for v in values]
    return values


def read_rows(data: bytes) -> list[dict[str, Any]]:
    """Every row of a flat Parquet file, as {column name: value}; None for a null."""
    if len(data) < 12 or data[:4] != MAGIC or data[-4:] != MAGIC:
        raise ParquetError("not a Parquet file (no PAR1 magic at both ends)")
    (footer_length,) = struct.unpack_from("<I", data, len(data) - 8)
    footer = _Thrift(data, len(data) - 8 - footer_length).struct()
    columns = _schema(footer[2])
    rows: list[dict[str, Any]] = []
    for group in footer.get(4, []):
        chunks = group[1]
        if len(chunks) != len(columns):
            raise ParquetError("a row group's columns differ from the schema")
        by_column = [_column_values(data, c, col) for c, col in zip(chunks, columns, strict=True)]
        rows += [
            {col.name: values[i] for col, values in zip(columns, by_column, strict=True)}
            for i in range(group[3])
        ]
    return rows
