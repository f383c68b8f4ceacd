import random
import re

import pandas as pd
import pyarrow as pa
import pytest

from feedback_pipeline.core.fingerprint import (
    fingerprint,
    fingerprints,
    fingerprints_array,
    normalise_array,
    normalise_text,
)

PIECES = ["Hello", "WORLD", "<EMAIL_1f>", "<API_KEY_ab12>", "<X_1_2>", "<<A_1>>", "<a_1>",
          "<EMAIL_>", "<ENGINEER_4>'s", "<ENGINEER_4G>", "  ", "\t", "\n", "!!", "...", "_x_",
          "café", "İstanbul", "ΣΟΦΟΣ", "naïve", "e\u0301", "日本語", "١٢٣", "Ⅻ", "²", "ß", "ﬁ",
          "\x1c", "\u00a0", "\u2028", "😀", "a-b", "don't", "<", ">", "x<y>z", "K", "ǅ"]


def _texts(seed: int, n: int = 3_000) -> list[str | None]:
    rng = random.Random(seed)
    texts = ["".join(rng.choice(PIECES) + rng.choice([" ", "", ",", "  "])
                     for _ in range(rng.randrange(0, 14))) for _ in range(n)]
    return texts + [None, "", "   ", "<EMAIL_ab>"]


@pytest.mark.parametrize("seed", [0, 1])
def test_vectorised_fingerprints_equal_fingerprint_value_for_value(seed):
    texts = _texts(seed)
    expected = [fingerprint(t) for t in texts]
    assert fingerprints_array(texts).to_pylist() == expected
    assert fingerprints(pd.Series(texts, dtype=object)) == expected
    assert fingerprints(t for t in texts) == expected
    assert fingerprints_array(pa.chunked_array([texts[:10], texts[10:]])).to_pylist() == expected
    assert fingerprints_array(pa.array(texts, pa.large_string())).to_pylist() == expected
    assert fingerprints_array(pa.array(texts).slice(17, 500)).to_pylist() == expected[17:517]
    assert len(set(expected)) > len(texts) // 2


def test_normalise_array_equals_normalise_text_on_ascii_and_unicode_rows():
    texts = _texts(2)
    assert normalise_array(texts).to_pylist() == [None if t is None else normalise_text(t)
                                                  for t in texts]
    ascii_only = [t for t in texts if t is None or t.isascii()]
    assert normalise_array(ascii_only).to_pylist() == [
        None if t is None else normalise_text(t) for t in ascii_only]
    assert normalise_array(["Ping <ENGINEER_4f>: the CI, again!!"]).to_pylist() == [
        "ping <engineer> the ci again"]


def test_fingerprints_of_nothing_and_of_nulls():
    assert fingerprints([]) == []
    assert fingerprints([None, None]) == [None, None]
    assert fingerprints(["A  b!", "a b"])[0] == fingerprint("a b")


def test_normalise_text_is_split_and_join_after_the_substitution():
    """Stripping the ends stands in for splitting and joining on whitespace: the same result on
    text mixing every kind of whitespace, tokens, punctuation and non-ASCII letters."""
    rng = random.Random(7)
    alphabet = (" \t\n\r\x0b\x0c\x1c\x85\xa0\u1680\u2003\u2028\u2029\u202f\u3000"
                "aZ09_<>-.,!é¿ßİ中\u0301\U0001f600") + "<ENGINEER_4f9a2c1b04de>"
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        folded = re.sub(r"<([A-Z][A-Z0-9_]*?)_[0-9a-f]+>", lambda m: f"<{m.group(1).lower()}>",
                        text)
        expected = " ".join(re.sub(r"[^\w<>]+", " ", folded.lower()).split())
        assert normalise_text(text) == expected, text
