"""Small conversions between protobuf well-known types / enums and Python values.

Used alike by the servers and the SDK, so a duration, a timestamp or an enum
name reads the same on both sides of the wire.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf import duration_pb2, timestamp_pb2
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper


def seconds_to_duration(seconds: float) -> duration_pb2.Duration:
    """A Duration of ``seconds`` (negative values clamp to zero)."""
    duration = duration_pb2.Duration()
    duration.FromNanoseconds(int(max(0.0, seconds) * 1e9))
    return duration


def duration_seconds(duration: duration_pb2.Duration) -> float:
    return duration.ToNanoseconds() / 1e9


def timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def timestamp_datetime(stamp: timestamp_pb2.Timestamp, present: bool = True) -> datetime | None:
    """An aware UTC datetime, or None when the field is unset (``present`` false)."""
    return stamp.ToDatetime(tzinfo=UTC) if present else None


def enum_name(enum: EnumTypeWrapper, value: int, prefix: str) -> Any:
    """``VERDICT_ALLOW`` → ``"allow"``; an unknown number → ``"unspecified"``."""
    try:
        return enum.Name(value).removeprefix(prefix).lower()
    except ValueError:
        return "unspecified"


def enum_names(enum: EnumTypeWrapper, prefix: str) -> tuple[str, ...]:
    """Every name of ``enum`` but its zero value, lower-case without ``prefix``."""
    return tuple(name.removeprefix(prefix).lower() for name, number in enum.items() if number != 0)
