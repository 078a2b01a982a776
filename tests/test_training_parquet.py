"""The training-time Parquet reader against files written by pyarrow 26.0.1
(tests/data/parquet/: several row groups and pages per column, nulls in
every column, UTF-8 text, three codecs; expected.json is pyarrow's own reading)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tandem_gateway.training.parquet import ParquetError, read_rows, snappy_decompress

FILES = Path(__file__).parent / "data" / "parquet"


@pytest.mark.parametrize("codec", ["snappy", "gzip", "none"])
def test_reads_what_pyarrow_wrote(codec: str) -> None:
    expected = json.loads((FILES / "expected.json").read_text(encoding="utf-8"))
    rows = read_rows((FILES / f"plain-{codec}.parquet").read_bytes())
    assert rows == expected
    assert len(rows) == 35
    assert rows[2]["text"] is None and rows[1]["score"] is None and rows[4]["label"] is None


def test_a_dictionary_encoded_column_is_refused_by_name() -> None:
    with pytest.raises(ParquetError, match="'index' is dictionary-encoded"):
        read_rows((FILES / "dictionary.parquet").read_bytes())


def test_not_parquet_is_refused() -> None:
    with pytest.raises(ParquetError, match="not a Parquet file"):
        read_rows(b"PAR1 this is plain text, not a footer")


def test_snappy_overlapping_copy_and_long_literal() -> None:
    # varint length 70; a 61-byte literal (tag 60<<2 plus one length byte);
    # then a 1-byte-offset copy of 9 bytes from 1 byte back (overlapping run).
    literal = bytes(range(61))
    block = bytes([70, 60 << 2, 60]) + literal + bytes([1 | ((9 - 4) << 2), 1])
    assert snappy_decompress(block) == literal + bytes([60]) * 9
    with pytest.raises(ParquetError, match="copy offset"):
        snappy_decompress(bytes([5, 1 | (1 << 2), 9]))
