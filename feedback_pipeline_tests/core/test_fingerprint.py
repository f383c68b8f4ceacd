import random

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
