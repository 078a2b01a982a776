"""Read a protobuf message's wire format by hand, only far enough to name a bad field.

protobuf refuses a message with a non-UTF-8 string field as a whole ("Error
parsing message"); the security interceptor uses this to tell the client which
field (``messages[2].content``) to fix.
"""

from __future__ import annotations

from google.protobuf.descriptor import Descriptor, FieldDescriptor


def first_invalid_utf8_field(descriptor: Descriptor, data: bytes, prefix: str = "") -> str | None:
    """The path (``messages[2].content``) of the first string field in ``data``
    that is not valid UTF-8, reading the protobuf wire format by hand; None if
    there is none or the bytes are not parseable wire format.

    protobuf refuses such a message as a whole ("Error parsing message"); this
    names the field for the INVALID_ARGUMENT a client gets.
    """
    counts: dict[int, int] = {}
    pos = 0
    try:
        while pos < len(data):
            key, pos = _varint(data, pos)
            number, wire = key >> 3, key & 7
            if wire == 0:
                _, pos = _varint(data, pos)
            elif wire == 1:
                pos += 8
            elif wire == 5:
                pos += 4
            elif wire == 2:
                length, pos = _varint(data, pos)
                chunk = data[pos : pos + length]
                if len(chunk) != length:
                    return None
                pos += length
                field = descriptor.fields_by_number.get(number)
                if field is None:
                    continue
                seen = counts.get(number, 0)
                counts[number] = seen + 1
                name = f"{prefix}{field.name}"
                if field.label == FieldDescriptor.LABEL_REPEATED:
                    name = f"{name}[{seen}]"
                if field.type == FieldDescriptor.TYPE_STRING:
                    try:
                        chunk.decode("utf-8")
                    except UnicodeDecodeError as exc:
                        return f"{name} (invalid UTF-8 at byte {exc.start})"
                elif field.type == FieldDescriptor.TYPE_MESSAGE:
                    inner = first_invalid_utf8_field(field.message_type, chunk, f"{name}.")
                    if inner is not None:
                        return inner
            else:
                return None
    except IndexError:
        return None
    return None


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise IndexError("varint too long")
