"""Unicode normalisation before any rule looks at the text.

NFKC folds look-alike forms (full-width letters, ligatures); invisible
characters are removed so they cannot split a keyword; Unicode tag characters
(U+E0000–U+E007F, used for "ASCII smuggling") and bidi overrides are reported,
because legitimate coding prompts do not carry them.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

_ZERO_WIDTH = {0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0x00AD, 0x180E}
_BIDI_OVERRIDES = {0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069}
_TAG_RANGE = range(0xE0000, 0xE0080)


@dataclass(frozen=True, slots=True)
class NormalizedText:
    text: str
    tag_characters: int
    bidi_overrides: int
    invisible_removed: int


def normalize(text: str) -> NormalizedText:
    if text.isascii():  # no invisible, bidi or tag characters, and NFKC is the identity
        return NormalizedText(text, 0, 0, 0)
    tags = bidi = invisible = 0
    kept: list[str] = []
    for char in text:
        point = ord(char)
        if point in _TAG_RANGE:
            tags += 1
            continue
        if point in _BIDI_OVERRIDES:
            bidi += 1
            continue
        if point in _ZERO_WIDTH:
            invisible += 1
            continue
        kept.append(char)
    folded = unicodedata.normalize("NFKC", "".join(kept))
    return NormalizedText(folded, tags, bidi, invisible)
