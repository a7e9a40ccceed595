"""Counterparty names: which characters a name may hold, and when two names are the same one.

Decisions:

- A name is NFC-normalised and trimmed of Unicode White_Space at both ends; white space inside
  is kept as typed (the comparison ignores it anyway).
- Refused, naming the first offending character by code point, Unicode name and 0-based
  position (in code points) in the string as given:
  - every general-category Cc control (C0, DEL, C1; tab and line feed included), and the line
    and paragraph separators U+2028 and U+2029: a name is one line of text;
  - the bidirectional embedding, override and isolate characters U+202A..U+202E and
    U+2066..U+2069: they can make a name display in another order than it is stored
    ("Trojan Source", CVE-2021-42574);
  - the deprecated format characters U+206A..U+206F (they swap digit shapes and Arabic forms),
    the interlinear annotation characters U+FFF9..U+FFFB (they hide text), and the tag
    characters U+E0000..U+E007F (they carry ASCII that is never shown; their only current use
    is emoji subdivision flags, which no counterparty name needs);
  - surrogate code points (a JSON "\\ud800" escape yields one; they cannot be encoded as UTF-8),
    noncharacters (U+FDD0..U+FDEF and every U+xxFFFE/U+xxFFFF: internal use only) and private
    use characters (no agreed meaning or look, so they cannot be compared).
- Accepted but ignored in the comparison: the other Default_Ignorable_Code_Point characters
  (UCD 15.0), so zero width space, ZWNJ and ZWJ (legitimate in Persian and Indic scripts), soft
  hyphen, word joiner, U+FEFF, variation selectors, Hangul fillers... never make a name new.
  That includes the bidi marks U+200E LRM, U+200F RLM and U+061C ALM: unlike overrides they
  have no scope and cannot reorder a run of text, and they are what fixes punctuation and
  digits next to Hebrew or Arabic words. A name that is empty once white space and these are
  ignored is refused, as is one with nothing left once accents are ignored too.
- Accepted and compared as they are: every other character, including the visible format
  characters (Arabic number signs U+0600..U+0605, ...) and unassigned code points. The latter
  are not refused because the Unicode version of Python's unicodedata (14.0 on 3.11) lags what
  the clients type: refusing them would refuse newly encoded characters and change behaviour
  on a Python upgrade, while comparing them as they are is harmless.
- The comparison key (name_key) folds case, accents (NFKD, then every mark of non-zero
  canonical combining class is dropped: Latin diacritics, but also Indic nukta and virama and
  Thai tone marks, an over-match accepted), compatibility forms (fullwidth, ligatures, math
  letters), White_Space and the ignorable characters above, then applies the Unicode TR39
  skeleton (UTS #39 section 4: NFD, drop Default_Ignorable_Code_Point, map each character to
  its prototype in confusables.txt, NFD).
- TR39 skeletons are case-sensitive, and case-insensitivity plus look-alikes cannot both be
  honoured in full: GREEK CAPITAL LETTER ETA (U+0397) looks like "H" while its lowercase
  (U+03B7) looks like "n". The key takes the capitals' look first, because names are often
  written in capitals and Cyrillic capitals spelling "BETA" (U+0412 U+0415 U+0422 U+0410)
  must match "BETA", which lowercase-first would miss (U+0432's prototype is U+0299, a small
  capital B): folded name -> uppercase -> skeleton -> fold -> skeleton -> fold, repeated
  until nothing changes (at most 3 rounds). The second skeleton catches lowercase look-alikes
  whose capitals have no prototype ("m" -> "rn", Cyrillic U+04BB -> "h", U+0501 -> "d").
  Consequences, intended: "I", "l", "i", "1" and "|" share a key (case-insensitivity plus
  "I" -> "l" forces "i" == "l", so "Bili" matches "Bill"), so do "0", "O" and "o", and "m"
  and "rn"; a lowercase letter whose capital looks different is compared by its capital
  (Greek nu, U+03BD, matches "n", not "v"). Punctuation is not ignored: "S.A." differs from
  "SA".
- Data: Unicode's own confusables.txt (version in its header, see data/README.md), read
  lazily with importlib.resources on first use; the Default_Ignorable_Code_Point and
  White_Space tables below are copied from UCD 15.0 (DerivedCoreProperties, PropList). Keys
  depend on that file and on Python's Unicode version: compare them, never store them.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType

__all__ = [
    "NAME_PATTERN",
    "InvalidNameError",
    "clean_name",
    "confusable_prototypes",
    "confusables_version",
    "describe_character",
    "name_key",
    "same_name",
    "skeleton",
]

CONFUSABLES_FILE = "confusables.txt"
# With confusables.txt 13.0.0 every code point settles in at most 3 rounds; more would mean
# a cycle in a new data file, which the idempotence tests would catch.
_MAX_ROUNDS = 8

# UCD 15.0 PropList.txt, White_Space.
_WHITE_SPACE_RANGES: tuple[tuple[int, int], ...] = (
    (0x0009, 0x000D),
    (0x0020, 0x0020),
    (0x0085, 0x0085),
    (0x00A0, 0x00A0),
    (0x1680, 0x1680),
    (0x2000, 0x200A),
    (0x2028, 0x2029),
    (0x202F, 0x202F),
    (0x205F, 0x205F),
    (0x3000, 0x3000),
)

# UCD 15.0 DerivedCoreProperties.txt, Default_Ignorable_Code_Point. Python's unicodedata has no
# accessor for this property; it is stable by design (reserved ranges are pre-assigned to it).
_DEFAULT_IGNORABLE_RANGES: tuple[tuple[int, int], ...] = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)

# Refused ranges, with the reason given to the client. Checked in this order.
_REFUSED_RANGES: tuple[tuple[int, int, str], ...] = (
    (0x0000, 0x001F, "control characters (tab and line breaks included) are not allowed"),
    (0x007F, 0x009F, "control characters are not allowed"),
    (0x2028, 0x2029, "line and paragraph separators are not allowed: a name is one line"),
    (
        0x202A,
        0x202E,
        "bidirectional embedding and override characters are not allowed: they can make"
        " a name display in another order than it is stored",
    ),
    (
        0x2066,
        0x2069,
        "bidirectional isolate characters are not allowed: they can make a name display"
        " in another order than it is stored",
    ),
    (0x206A, 0x206F, "deprecated format characters are not allowed"),
    (0xFFF9, 0xFFFB, "interlinear annotation characters are not allowed: they hide text"),
    (0xE0000, 0xE007F, "tag characters are not allowed: they carry text that is never shown"),
    (0xD800, 0xDFFF, "surrogate code points are not characters"),
    (0xFDD0, 0xFDEF, "noncharacters are not allowed"),
    *(
        (plane + 0xFFFE, plane + 0xFFFF, "noncharacters are not allowed")
        for plane in range(0, 0x110000, 0x10000)
    ),
    (0xE000, 0xF8FF, "private use characters are not allowed"),
    (0xF0000, 0xFFFFD, "private use characters are not allowed"),
    (0x100000, 0x10FFFD, "private use characters are not allowed"),
)

# NameAliases.txt (control, else figment): controls have no Unicode name of their own.
_C0_NAMES = (
    "NULL",
    "START OF HEADING",
    "START OF TEXT",
    "END OF TEXT",
    "END OF TRANSMISSION",
    "ENQUIRY",
    "ACKNOWLEDGE",
    "ALERT",
    "BACKSPACE",
    "CHARACTER TABULATION",
    "LINE FEED",
    "LINE TABULATION",
    "FORM FEED",
    "CARRIAGE RETURN",
    "SHIFT OUT",
    "SHIFT IN",
    "DATA LINK ESCAPE",
    "DEVICE CONTROL ONE",
    "DEVICE CONTROL TWO",
    "DEVICE CONTROL THREE",
    "DEVICE CONTROL FOUR",
    "NEGATIVE ACKNOWLEDGE",
    "SYNCHRONOUS IDLE",
    "END OF TRANSMISSION BLOCK",
    "CANCEL",
    "END OF MEDIUM",
    "SUBSTITUTE",
    "ESCAPE",
    "INFORMATION SEPARATOR FOUR",
    "INFORMATION SEPARATOR THREE",
    "INFORMATION SEPARATOR TWO",
    "INFORMATION SEPARATOR ONE",
)
_C1_NAMES = (
    "PADDING CHARACTER",
    "HIGH OCTET PRESET",
    "BREAK PERMITTED HERE",
    "NO BREAK HERE",
    "INDEX",
    "NEXT LINE",
    "START OF SELECTED AREA",
    "END OF SELECTED AREA",
    "CHARACTER TABULATION SET",
    "CHARACTER TABULATION WITH JUSTIFICATION",
    "LINE TABULATION SET",
    "PARTIAL LINE FORWARD",
    "PARTIAL LINE BACKWARD",
    "REVERSE LINE FEED",
    "SINGLE SHIFT TWO",
    "SINGLE SHIFT THREE",
    "DEVICE CONTROL STRING",
    "PRIVATE USE ONE",
    "PRIVATE USE TWO",
    "SET TRANSMIT STATE",
    "CANCEL CHARACTER",
    "MESSAGE WAITING",
    "START OF GUARDED AREA",
    "END OF GUARDED AREA",
    "START OF STRING",
    "SINGLE GRAPHIC CHARACTER INTRODUCER",
    "SINGLE CHARACTER INTRODUCER",
    "CONTROL SEQUENCE INTRODUCER",
    "STRING TERMINATOR",
    "OPERATING SYSTEM COMMAND",
    "PRIVACY MESSAGE",
    "APPLICATION PROGRAM COMMAND",
)


def _character_class(ranges: tuple[tuple[int, int], ...]) -> str:
    return "".join(f"\\U{low:08x}-\\U{high:08x}" for low, high in ranges)


def _literal_class(ranges: Iterable[tuple[int, int]]) -> str:
    # Literal characters, so the pattern reads the same in Python, in pydantic's Rust regex
    # engine and in an OpenAPI (ECMA-262) validator; surrogates cannot be written literally
    # (and are refused by clean_name anyway).
    return "".join(
        chr(low) if low == high else f"{chr(low)}-{chr(high)}"
        for low, high in ranges
        if not 0xD800 <= low <= 0xDFFF
    )


def _name_pattern() -> str:
    refused = _literal_class((low, high) for low, high, _ in _REFUSED_RANGES)
    blank = _literal_class((*_WHITE_SPACE_RANGES, *_DEFAULT_IGNORABLE_RANGES))
    return f"^[^{refused}]*[^{refused}{blank}][^{refused}]*$"


_WHITE_SPACE = "".join(chr(cp) for low, high in _WHITE_SPACE_RANGES for cp in range(low, high + 1))
_IGNORED = re.compile(
    f"[{_character_class(_WHITE_SPACE_RANGES)}{_character_class(_DEFAULT_IGNORABLE_RANGES)}]+"
)
_DEFAULT_IGNORABLE = re.compile(f"[{_character_class(_DEFAULT_IGNORABLE_RANGES)}]+")
_REFUSED = re.compile(f"[{_character_class(tuple((lo, hi) for lo, hi, _ in _REFUSED_RANGES))}]")


NAME_PATTERN = _name_pattern()
"""What clean_name accepts, as a regular expression: no refused character, and something
that is neither white space nor invisible (published in the OpenAPI spec)."""


class InvalidNameError(ValueError):
    """A name that cannot be used; `message` says which character and why (code point + name)."""

    def __init__(
        self, message: str, code_point: int | None = None, position: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code_point = code_point
        self.position = position


def describe_character(character: str) -> str:
    """'U+202E RIGHT-TO-LEFT OVERRIDE': the code point and its Unicode name, alias or label."""
    cp = ord(character)
    return f"U+{cp:04X} {unicodedata.name(character, '') or _label(cp)}"


def _label(cp: int) -> str:
    # Controls have no Unicode name, only aliases (NameAliases.txt); the rest of what has no
    # name gets Unicode's code point label (section 4.8 of the standard).
    if cp < 0x20:
        return _C0_NAMES[cp]
    if cp == 0x7F:
        return "DELETE"
    if 0x80 <= cp <= 0x9F:
        return _C1_NAMES[cp - 0x80]
    if 0xD800 <= cp <= 0xDFFF:
        return f"<surrogate-{cp:04X}>"
    if 0xFDD0 <= cp <= 0xFDEF or cp & 0xFFFE == 0xFFFE:
        return f"<noncharacter-{cp:04X}>"
    if 0xE000 <= cp <= 0xF8FF or cp >= 0xF0000:
        return f"<private-use-{cp:04X}>"
    return f"<reserved-{cp:04X}>"


def _refusal_reason(cp: int) -> str:
    for low, high, reason in _REFUSED_RANGES:
        if low <= cp <= high:
            return reason
    return "it is not allowed"  # unreachable: _REFUSED is built from the same table


def clean_name(raw: str) -> str:
    """NFC-normalised and trimmed (Unicode White_Space at both ends).

    Raises InvalidNameError for the first refused character (as "U+202E RIGHT-TO-LEFT OVERRIDE
    at position N: why") and for a name that is empty once invisible characters and white
    space are ignored. NAME_PATTERN says the same as a regular expression.
    """
    refused = _REFUSED.search(raw)
    if refused is not None:
        character = refused.group()
        raise InvalidNameError(
            f"{describe_character(character)} at position {refused.start()}: "
            f"{_refusal_reason(ord(character))}",
            code_point=ord(character),
            position=refused.start(),
        )
    name = unicodedata.normalize("NFC", raw).strip(_WHITE_SPACE)
    if not _IGNORED.sub("", name):
        raise InvalidNameError(
            "the name is empty once white space and invisible characters"
            " (such as U+200B ZERO WIDTH SPACE) are ignored"
        )
    # A name of visible marks only (U+00B4 ACUTE ACCENT) is kept: its key is empty, so such
    # names match only each other. Refusing it too would put Unicode decompositions into
    # NAME_PATTERN.
    return name


@functools.lru_cache(maxsize=65536)
def name_key(name: str) -> str:
    """The comparison key: case-, accent-, space-, invisible- and look-alike-insensitive.

    Any string is accepted (names already stored are compared too, refused characters or not).
    The key is opaque: "ACME" gives "acrne".
    """
    return "".join([_character_key(character) for character in name])


@functools.lru_cache(maxsize=65536)
def _character_key(character: str) -> str:
    # Every step works character by character (decompositions, case mappings, prototypes, and
    # marks are dropped whatever order NFD puts them in), so a name's key is the concatenation
    # of its characters' keys, and a few thousand distinct characters cover every name.
    # Repeating the passes until nothing changes makes look-alikes of look-alikes meet
    # (U+026A small capital I -> "i" -> "l") and keeps name_key idempotent.
    key = character
    for _ in range(_MAX_ROUNDS):
        again = _fold(skeleton(_fold(skeleton(_fold(key).upper()))))
        if again == key:
            break
        key = again
    return key


def same_name(a: str, b: str) -> bool:
    """Whether two names would be taken for one another (see name_key)."""
    return name_key(a) == name_key(b)


def skeleton(text: str) -> str:
    """UTS #39 skeleton(X), exactly as specified: case-sensitive, marks and spaces kept."""
    text = _DEFAULT_IGNORABLE.sub("", unicodedata.normalize("NFD", text))
    return unicodedata.normalize("NFD", text.translate(_confusables().table))


def confusables_version() -> str:
    """The Unicode version of the bundled confusables.txt, from its own header ("13.0.0")."""
    return _confusables().version


def confusable_prototypes() -> Mapping[str, str]:
    """confusables.txt as read: each source character and its prototype (one or more chars)."""
    return _confusables().prototypes


def _fold(text: str) -> str:
    # Case folding before dropping marks: it turns U+0345 (iota subscript) into a letter, as
    # uppercasing does, and it can produce what NFKD would split again.
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())
    return _IGNORED.sub("", _strip_marks(text))


def _strip_marks(text: str) -> str:
    return "".join(c for c in text if not unicodedata.combining(c))


@dataclass(frozen=True, slots=True)
class _Confusables:
    version: str
    prototypes: Mapping[str, str]
    table: dict[int, str]  # for str.translate, which a mapping proxy would slow down


@functools.cache
def _confusables() -> _Confusables:
    # importlib.resources rather than __file__, so it also reads from a zipped install.
    path = resources.files("app.domain") / "data" / CONFUSABLES_FILE
    version = ""
    declared_total = -1
    prototypes: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8-sig").splitlines():
        data, _, comment = line.partition("#")
        if data.strip():
            source, target = (field.strip() for field in data.split(";")[:2])
            prototypes[chr(int(source, 16))] = "".join(chr(int(cp, 16)) for cp in target.split())
            continue
        label, _, value = comment.partition(":")
        if label.strip() == "Version" and not version:
            version = value.strip()
        elif label.strip() == "total":
            declared_total = int(value)
    # A truncated or hand-edited copy would silently weaken the look-alike check.
    if not version or len(prototypes) != declared_total:
        raise RuntimeError(
            f"{CONFUSABLES_FILE}: version {version!r}, {len(prototypes)} mappings"
            f" where its footer says {declared_total}"
        )
    return _Confusables(
        version=version,
        prototypes=MappingProxyType(prototypes),
        table={ord(source): target for source, target in prototypes.items()},
    )
