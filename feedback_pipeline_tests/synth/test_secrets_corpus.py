import re

from feedback_pipeline.core.redaction import Redactor, luhn_ok
from feedback_pipeline.synth.secrets_corpus import (
    ENTITY_KINDS,
    GENERATORS,
    iter_texts,
    luhn_check_digit,
    make_labelled_corpus,
    make_trace_frame,
    score_spans,
)

SHAPES = {
    "EMAIL": r"[^@\s]+@[^@\s]+\.[A-Za-z]+|[\w.]+ ?(?:\[at\]|\(at\)|@|＠|%40| at ) ?\w+ ?"
             r"(?:\[dot\]|\(dot\)|\.| dot ) ?\w+",
    "ENGINEER": r"ENG-\d+",
    "COMMIT": r"[0-9a-f]{7,40}",
    "AWS_ACCESS_KEY": r"(AKIA|ASIA)[A-Z0-9]{16}",
    "PRIVATE_KEY": r"-----BEGIN [A-Z ]+-----[\s\S]+-----END [A-Z ]+-----|LS0tLS1CRUdJTi[\w+/=]+"
                   r"|(?:[A-Za-z0-9+/]{60,76}\n){3,}[A-Za-z0-9+/]*={0,2}"
                   r"|AGE-SECRET-KEY-1[02-9AC-HJ-NP-Z]{58}",
    "GITLAB_TOKEN": r"(?:glpat|gldt|glrt|glptt)-[\w-]{20}|GR1348941[\w-]{20}",
    "NPM_TOKEN": r"npm_[A-Za-z0-9]{36}",
    "DATABRICKS_TOKEN": r"dapi[0-9a-f]{32}(?:-2)?",
    "TWILIO_KEY": r"(?:AC|SK)[0-9a-f]{32}",
    "SENDGRID_KEY": r"SG\.[\w-]{22}\.[\w-]{43}",
    "SSN": r"(?!000|666|9)\d{3}-\d\d-\d{4}",
    "IBAN": r"[A-Z]{2}\d\d[A-Z0-9 ]+",
    "STRIPE_KEY": r"[rs]k_live_\w+|whsec_[A-Za-z0-9]+",
}


def test_deterministic_sized_and_spans_point_at_planted_values():
    texts, labels = make_labelled_corpus(120, seed=3)
    again, _ = make_labelled_corpus(120, seed=3)
    other, _ = make_labelled_corpus(120, seed=4)
    assert texts == again and texts != other
    assert all(900 <= len(t) <= 3500 for t in texts)
    kinds = set()
    for text, spans in zip(texts, labels, strict=True):
        last_end = 0
        for start, end, kind in sorted(spans):
            assert 0 <= start < end <= len(text) and start >= last_end
            last_end = end
            value = text[start:end]
            assert value == value.strip()
            if kind in SHAPES:
                assert re.fullmatch(SHAPES[kind], value), (kind, value)
            kinds.add(kind)
    assert kinds == set(ENTITY_KINDS)


def test_decoys_are_planted_and_unlabelled():
    texts, labels = make_labelled_corpus(200, seed=8)
    uuid = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
    sixteen = re.compile(r"\b\d{16}\b")
    found = {"uuid": 0, "non_luhn": 0, "md5": 0}
    for text, spans in zip(texts, labels, strict=True):
        def inside(m, spans=spans):
            return any(s <= m.start() and m.end() <= e for s, e, _ in spans)
        for m in uuid.finditer(text):
            # a UUID is a decoy unless it is the body of a token (`access-sandbox-<uuid>`)
            if not any(s <= m.start() and m.end() <= e and k != "IPV6" for s, e, k in spans):
                found["uuid"] += 1
        for m in sixteen.finditer(text):
            if not inside(m):
                assert not luhn_ok(m.group(0))
                found["non_luhn"] += 1
        found["md5"] += len(re.findall(r"md5sum [0-9a-f]{32}", text))
    assert min(found.values()) > 10, found


def test_generated_cards_pass_luhn_and_decoys_fail():
    import random
    rng = random.Random(1)
    for _ in range(200):
        card = GENERATORS["CARD"](rng).replace(" ", "").replace("-", "")
        assert luhn_ok(card)
        assert not luhn_ok(GENERATORS["nonluhn"](rng))
    assert luhn_check_digit("7992739871") == "3"


def test_iter_texts_streams_a_realistic_mix():
    labelled = list(iter_texts(300, seed=2, labelled=True))
    plain = list(iter_texts(300, seed=2))
    assert [t for t, _ in labelled] == plain
    size = sum(len(t) for t in plain)
    values = sum(len(s) for _, s in labelled)
    assert 0.8 < values / (size / 1000) < 4
    for text, spans in labelled:
        assert all(text[s:e] and e <= len(text) for s, e, _ in spans)


def test_trace_frame_has_the_trace_columns():
    texts, _ = make_labelled_corpus(5, seed=1)
    frame = make_trace_frame(texts, seed=1)
    assert list(frame["trace_id"]) == [f"trace-{i:07d}" for i in range(5)]
    assert set(frame.columns) >= {"prompt", "context", "candidates", "approved_answer",
                                  "extra_json"}
    assert all(len(c) == 2 and {"candidate_id", "model_id", "generation", "text"} <= set(c[0])
               for c in frame["candidates"])


def test_score_spans():
    gold = [[(0, 5, "EMAIL"), (10, 14, "IPV4")]]
    perfect = score_spans(gold, gold).set_index("kind")
    assert perfect["recall"].tolist() == [1.0, 1.0] and perfect["precision"].tolist() == [1.0, 1.0]
    partial = score_spans(gold, [[(0, 3, "EMAIL"), (10, 14, "PHONE"), (20, 22, "EMAIL")]])
    partial = partial.set_index("kind")
    assert partial.loc["EMAIL", "recall"] == 0.0 and partial.loc["EMAIL", "precision"] == 0.5
    assert partial.loc["IPV4", "recall"] == 0.0 and partial.loc["PHONE", "precision"] == 0.0
    loose = score_spans(gold, [[(0, 6, "X"), (10, 14, "Y")]], kinds_must_match=False)
    assert loose.set_index("kind").loc[["EMAIL", "IPV4"], "recall"].tolist() == [1.0, 1.0]


def test_every_issue17_family_has_templates_and_distinct_values():
    from feedback_pipeline.synth.secrets_corpus import FAMILIES, family_kind, family_samples
    for family in FAMILIES:
        samples = family_samples(family, 6, seed=1)
        values = {text[s:e] for text, spans in samples for s, e, k in spans
                  if k == family_kind(family)}
        assert len(values) >= 3, family


def test_generated_ids_are_valid_and_decoy_ids_are_not():
    import random

    from stdnum import iban
    rng = random.Random(3)
    for _ in range(100):
        assert iban.is_valid(GENERATORS["IBAN"](rng))
        bad_iban = GENERATORS["bad_iban"](rng)  # check digits 00: mod 97 may pass, the range not
        assert not Redactor().detect(f"IBAN {bad_iban}")
        area = GENERATORS["SSN"](rng)[:3]
        assert area not in ("000", "666") and area[0] != "9"
        bad = GENERATORS["bad_ssn"](rng)[:3]
        assert bad in ("000", "666") or bad[0] == "9"


def test_decoy_templates_plant_nothing():
    import random

    from feedback_pipeline.synth.secrets_corpus import decoy_template_indexes, render_fragment
    rng = random.Random(0)
    indexes = decoy_template_indexes()
    assert len(indexes) >= 5
    for i in indexes:
        assert render_fragment(rng, i)[1] == []
