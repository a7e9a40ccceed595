"""Counterparty names: refused characters, invisible ones, and look-alike-insensitive comparison."""

from __future__ import annotations

import re
import subprocess
import sys
import unicodedata
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.names import (
    NAME_PATTERN,
    InvalidNameError,
    clean_name,
    confusable_prototypes,
    confusables_version,
    describe_character,
    name_key,
    same_name,
    skeleton,
)

FAST = settings(max_examples=300, deadline=None)
REPO = Path(__file__).resolve().parents[2]

# Names as a client would type them, plus the characters this module cares about.
name_text = st.text(
    alphabet=st.one_of(
        st.characters(categories=["L", "M", "N", "P", "S", "Zs"]),
        st.sampled_from("\u200b\u200c\u200d\u00ad\u2060\ufeff\u200e\u0301\u0308\u0327\u0345"),
    ),
    max_size=24,
)


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


def refusal(raw: str) -> InvalidNameError:
    with pytest.raises(InvalidNameError) as caught:
        clean_name(raw)
    return caught.value


# --- clean_name: normalisation ---------------------------------------------------------------


def test_decomposed_and_composed_names_clean_to_the_same_nfc_name() -> None:
    decomposed, composed = "Cafe\u0301 del Sol", "Caf\u00e9 del Sol"
    assert decomposed != composed

    assert clean_name(decomposed) == composed
    assert clean_name(composed) == composed
    assert same_name(decomposed, composed)


def test_unicode_white_space_is_trimmed_at_both_ends_and_kept_inside() -> None:
    assert clean_name("\u00a0 ACME  SA\u3000\u2003") == "ACME  SA"


def test_a_clean_name_is_returned_as_typed() -> None:
    name = "Distribuidora Peñón S.R.L."
    assert clean_name(name) == name


# --- clean_name: refused characters ----------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "label"),
    [
        ("AC\x00ME", "U+0000 NULL"),
        ("ACME\tSA", "U+0009 CHARACTER TABULATION"),
        ("ACME SA\n", "U+000A LINE FEED"),
        ("AC\x1bME", "U+001B ESCAPE"),
        ("ACME\x7f", "U+007F DELETE"),
        ("AC\x85ME", "U+0085 NEXT LINE"),
        ("AC\x9bME", "U+009B CONTROL SEQUENCE INTRODUCER"),
        ("ACME\u2028SA", "U+2028 LINE SEPARATOR"),
        ("\u202aACME", "U+202A LEFT-TO-RIGHT EMBEDDING"),
        ("ACME \u202eAS", "U+202E RIGHT-TO-LEFT OVERRIDE"),
        ("ACME \u2066SA", "U+2066 LEFT-TO-RIGHT ISOLATE"),
        ("ACME \u2068SA", "U+2068 FIRST STRONG ISOLATE"),
        ("ACME SA\u2069", "U+2069 POP DIRECTIONAL ISOLATE"),
        ("ACME\u206e", "U+206E NATIONAL DIGIT SHAPES"),
        ("AC\ufff9ME", "U+FFF9 INTERLINEAR ANNOTATION ANCHOR"),
        ("ACME\U000e0041", "U+E0041 TAG LATIN CAPITAL LETTER A"),
        ("ACME\ud800", "U+D800 <surrogate-D800>"),
        ("ACME\ufdd0", "U+FDD0 <noncharacter-FDD0>"),
        ("ACME\U0010ffff", "U+10FFFF <noncharacter-10FFFF>"),
        ("ACME\ue000", "U+E000 <private-use-E000>"),
        ("ACME\U000f0000", "U+F0000 <private-use-F0000>"),
    ],
)
def test_refused_characters_are_named_by_code_point_and_position(raw: str, label: str) -> None:
    code_point = int(label.split()[0].removeprefix("U+"), 16)
    position = raw.index(chr(code_point))

    error = refusal(raw)

    assert error.code_point == code_point
    assert error.position == position
    assert error.message.startswith(f"{label} at position {position}: ")
    assert str(error) == error.message
    assert isinstance(error, ValueError)


def test_the_first_refused_character_is_the_one_reported() -> None:
    error = refusal("A\u202eB\x00C")
    assert (error.code_point, error.position) == (0x202E, 1)


def test_control_characters_at_the_ends_are_refused_not_trimmed() -> None:
    assert refusal("\tACME").code_point == 0x09
    assert refusal("ACME\r\n").code_point == 0x0D


def test_every_control_and_bidi_embedding_override_or_isolate_character_is_refused() -> None:
    refused = [cp for cp in range(0x110000) if unicodedata.category(chr(cp)) == "Cc"]
    refused += [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]
    assert len(refused) == 65 + 9
    for cp in refused:
        assert refusal(f"AC{chr(cp)}ME").code_point == cp


def test_the_bidi_refusal_says_why() -> None:
    assert "display in another order" in refusal("ACME\u202e").message


# --- clean_name and name_key: invisible characters -------------------------------------------


@pytest.mark.parametrize(
    "invisible",
    [
        "\u200b",  # ZERO WIDTH SPACE
        "\u200c",  # ZERO WIDTH NON-JOINER
        "\u200d",  # ZERO WIDTH JOINER
        "\u00ad",  # SOFT HYPHEN
        "\u2060",  # WORD JOINER
        "\ufeff",  # ZERO WIDTH NO-BREAK SPACE
        "\u200e",  # LEFT-TO-RIGHT MARK
        "\u200f",  # RIGHT-TO-LEFT MARK
        "\u061c",  # ARABIC LETTER MARK
        "\u034f",  # COMBINING GRAPHEME JOINER
        "\ufe0f",  # VARIATION SELECTOR-16
    ],
)
def test_invisible_characters_are_accepted_but_never_make_a_name_new(invisible: str) -> None:
    name = f"AC{invisible}ME"

    assert clean_name(name) == name
    assert same_name("ACME", name)
    assert same_name("ACME", f"{invisible}A{invisible}CME{invisible}")


def test_zero_width_non_joiner_is_kept_in_a_persian_name() -> None:
    # "Mihan-ravesh": the ZWNJ keeps the two parts from joining, and belongs to the spelling.
    name = "\u0645\u06cc\u0647\u0646\u200c\u0631\u0648\u0634"
    assert clean_name(name) == name
    assert same_name(name, name.replace("\u200c", ""))


@pytest.mark.parametrize(
    "raw",
    ["", "   ", "\u200b", "\u200d\u200c", " \u00ad ", "\u2060\ufeff\u3000", "\u3164", "\u200e"],
)
def test_a_name_of_only_invisible_characters_and_spaces_is_refused(raw: str) -> None:
    error = refusal(raw)
    assert error.code_point is None
    assert "empty" in error.message


def test_a_name_of_only_visible_marks_is_kept_and_matches_only_its_kind() -> None:
    assert clean_name("\u00b4") == "\u00b4"
    assert same_name("\u00b4", "\u0301\u0308")
    assert not same_name("\u00b4", "a")


@pytest.mark.parametrize(
    "raw",
    ["ACME", " Caf\u00e9 ", "\u00b4", "A\u200bB", "\u05d0\u200f", "ACME\U0001f600"],
)
def test_name_pattern_accepts_what_clean_name_accepts(raw: str) -> None:
    clean_name(raw)
    assert re.fullmatch(NAME_PATTERN, raw)


@pytest.mark.parametrize(
    "raw", ["", " ", "\u200b\u200d", "A\u202eB", "A\x00", "\ue000", "A\U000e0041", "a\n"]
)
def test_name_pattern_refuses_what_clean_name_refuses(raw: str) -> None:
    with pytest.raises(InvalidNameError):
        clean_name(raw)
    assert re.fullmatch(NAME_PATTERN, raw) is None


# --- name_key: look-alikes --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Banco Naci\u00f3n", "Banco N\u0430ci\u00f3n"),  # Cyrillic a
        ("Banco Nacion", "B\u0430nco N\u0430cion"),
        ("Proveedor", "Pr\u03bfveed\u03bfr"),  # Greek omicron
        ("ACME", "\uff21\uff23\uff2d\uff25"),  # fullwidth
        ("acme", "\U0001d41a\U0001d41c\U0001d426\U0001d41e"),  # mathematical bold
        ("Paypal", "PayPaI"),  # capital I for l
        ("Paypal", "Payp\u0430l"),
        ("Boca", "B0CA"),  # digit zero for O
        ("Modern", "Rnodern"),  # rn for m
        ("BETA", "\u0412\u0415\u0422\u0410"),  # Cyrillic capitals
        ("beta", "\u0412\u0415\u0422\u0410"),
        ("Shell", "S\u04bbell"),  # Cyrillic shha, a lowercase-only look-alike
        ("Hotel", "\u0397otel"),  # Greek capital eta
    ],
)
def test_look_alikes_are_the_same_name(a: str, b: str) -> None:
    assert same_name(a, b)
    assert same_name(b, a)
    assert name_key(a) == name_key(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Caf\u00e9  Sol", "cafesol"),
        ("JOS\u00c9 MAR\u00cdA SRL", "jose maria srl"),
        ("Espa\u00f1a Seguros", "ESPANA SEGUROS"),
        ("Stra\u00dfe GmbH", "STRASSE GMBH"),
        ("Ac me", "A c m e"),
        ("A\u00a0CME", "ACME"),
        ("o\ufb03ce", "office"),  # ligature
    ],
)
def test_case_accents_and_spaces_are_folded(a: str, b: str) -> None:
    assert same_name(a, b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Proveedor SA", "Proveedor SRL"),
        ("Proveedor S.A.", "Proveedor SA"),
        ("Sol-Mar", "SolMar"),
        ("ACME 1", "ACME 2"),
        ("Banco Nacion", "Banco Provincia"),
        ("Banco Naci\u00f3n", "Banco Naci\u00f3n Argentina"),
    ],
)
def test_different_names_stay_different(a: str, b: str) -> None:
    assert not same_name(a, b)
    assert name_key(a) != name_key(b)


def test_name_key_takes_any_string_even_a_refused_one() -> None:
    assert name_key("ACME\u202eAS") == name_key("ACMEAS")
    assert name_key("ACME\tSA") == name_key("ACME SA")
    assert isinstance(name_key("ACME\ud800"), str)
    assert name_key("") == ""


# --- skeleton and its data ------------------------------------------------------------------


def test_skeleton_is_the_case_sensitive_tr39_skeleton() -> None:
    assert skeleton("paypaI") == skeleton("paypal") == "paypal"
    assert skeleton("\u0430") == "a"
    assert skeleton("m") == "rn"
    assert skeleton("A") != skeleton("a")
    assert skeleton("AC\u200bME") == "ACME"


def test_confusables_data_is_versioned_and_plausible() -> None:
    version = confusables_version()
    prototypes = confusable_prototypes()

    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    assert len(prototypes) > 6000
    assert prototypes["\u0430"] == "a"
    assert prototypes["I"] == "l"
    assert prototypes["0"] == "O"
    # TR39 prototypes are final: mapping again changes nothing.
    sources = set(prototypes)
    assert not any(c in sources for target in prototypes.values() for c in target)


def test_the_data_readme_names_the_bundled_version() -> None:
    readme = resources.files("app.domain").joinpath("data", "README.md").read_text("utf-8")
    assert f"| Version | {confusables_version()} " in readme


def test_the_data_file_is_read_on_first_use_not_on_import() -> None:
    script = (
        "import sys\n"
        "opened = []\n"
        "sys.addaudithook(lambda event, args: event == 'open' and opened.append(str(args[0])))\n"
        "import app.domain.names as names\n"
        "before = sum(path.endswith('confusables.txt') for path in opened)\n"
        "names.name_key('ACME'); names.name_key('ACME SA')\n"
        "after = sum(path.endswith('confusables.txt') for path in opened)\n"
        "print(before, after)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["0", "1"]


def test_describe_character_names_by_code_point() -> None:
    assert describe_character("\u202e") == "U+202E RIGHT-TO-LEFT OVERRIDE"
    assert describe_character("\t") == "U+0009 CHARACTER TABULATION"
    assert describe_character("\U0001f600") == "U+1F600 GRINNING FACE"


# --- properties -----------------------------------------------------------------------------


@FAST
@given(name_text)
def test_name_key_is_the_same_for_nfc_and_nfd(text: str) -> None:
    assert name_key(nfc(text)) == name_key(nfd(text))
    assert same_name(nfc(text), nfd(text))


@FAST
@given(name_text)
def test_name_key_is_idempotent(text: str) -> None:
    key = name_key(text)
    assert name_key(key) == key


@FAST
@given(name_text)
def test_name_key_ignores_case(text: str) -> None:
    key = name_key(text)
    assert name_key(text.upper()) == key
    assert name_key(text.lower()) == key
    assert name_key(text.casefold()) == key


@FAST
@given(name_text, st.integers(0, 24), st.sampled_from("\u200b\u200d\u00ad\u2060 \u00a0"))
def test_invisible_characters_and_spaces_never_change_the_key(
    text: str, at: int, invisible: str
) -> None:
    assert name_key(text[:at] + invisible + text[at:]) == name_key(text)


@FAST
@given(name_text)
def test_clean_name_is_idempotent(text: str) -> None:
    try:
        cleaned = clean_name(text)
    except InvalidNameError:
        return
    assert clean_name(cleaned) == cleaned
    assert unicodedata.is_normalized("NFC", cleaned)
    assert same_name(cleaned, text)


def test_keys_settle_for_every_confusable_and_ascii_character() -> None:
    # Look-alikes of look-alikes take more than one round; a cycle in new data would show here.
    prototypes = confusable_prototypes()
    characters = {chr(cp) for cp in range(0x20, 0x7F)} | set(prototypes)
    characters |= {c for target in prototypes.values() for c in target}
    characters |= {c.upper() for c in list(characters)} | {c.lower() for c in list(characters)}
    for character in characters:
        key = name_key(character)
        assert name_key(key) == key, describe_character(character)
        assert name_key(character.upper()) == key, describe_character(character)
