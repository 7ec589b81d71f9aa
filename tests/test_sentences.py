"""Tests for service.tasks.sentences: table of tricky cases, offset invariants, properties."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.tasks.sentences import ABBREVIATIONS, Sentence, split_sentences

CASES: list[tuple[str, list[str]]] = [
    # basics
    ("", []),
    ("   \n\t  ", []),
    ("Hello world", ["Hello world"]),
    ("  Hello world.  ", ["Hello world."]),
    ("One. Two. Three.", ["One.", "Two.", "Three."]),
    ("Really?! Yes. Wow!!! Ok.", ["Really?!", "Yes.", "Wow!!!", "Ok."]),
    ("It works. 42 is the answer.", ["It works.", "42 is the answer."]),
    ("It ended. (Or did it?) Maybe.", ["It ended.", "(Or did it?)", "Maybe."]),
    ("lowercase after. does not split", ["lowercase after. does not split"]),
    # quotes and brackets after the terminal punctuation
    ('He said "Stop." Then he left.', ['He said "Stop."', "Then he left."]),
    ("She said ‘no.’ Then she went.", ["She said ‘no.’", "Then she went."]),
    ("He said “Go!” Nobody moved.", ["He said “Go!”", "Nobody moved."]),
    ("«Assez.» Il est parti.", ["«Assez.»", "Il est parti."]),
    ("(See above.) Next one.", ["(See above.)", "Next one."]),
    ("[Citation needed.] Next.", ["[Citation needed.]", "Next."]),
    ('"Why?" he asked.', ['"Why?" he asked.']),
    ('He stopped. "Who is there?" she asked.', ["He stopped.", '"Who is there?" she asked.']),
    # abbreviations
    ("Mr. Smith met Dr. Jones. They talked.", ["Mr. Smith met Dr. Jones.", "They talked."]),
    ("Mrs. Brown and Ms. Green and Prof. White.", ["Mrs. Brown and Ms. Green and Prof. White."]),
    ("We met at St. Paul's. It was cold.", ["We met at St. Paul's.", "It was cold."]),
    (
        "Fruit, e.g. Apples, i.e. Red ones, cf. Pears.",
        ["Fruit, e.g. Apples, i.e. Red ones, cf. Pears."],
    ),
    (
        "Smith et al. showed it. Brazil vs. Germany.",
        ["Smith et al. showed it.", "Brazil vs. Germany."],
    ),
    ("See Fig. 3 and Eq. 2 on pp. 4-5 of Vol. 2.", ["See Fig. 3 and Eq. 2 on pp. 4-5 of Vol. 2."]),
    ("It is No. 5 in the list. Done.", ["It is No. 5 in the list.", "Done."]),
    ("See p. 5. Also pp. 6-7.", ["See p. 5.", "Also pp. 6-7."]),
    ("Mt. Everest is tall. Sgt. Pepper sang.", ["Mt. Everest is tall.", "Sgt. Pepper sang."]),
    ("I said no. Then I left.", ["I said no.", "Then I left."]),
    ("It costs approx. 5 dollars.", ["It costs approx. 5 dollars."]),
    ("On Jan. 5 and Dec. 24 we rest.", ["On Jan. 5 and Dec. 24 we rest."]),
    ("MR. SMITH IS HERE. HELLO.", ["MR. SMITH IS HERE.", "HELLO."]),
    ("Apples, pears, etc. We like fruit.", ["Apples, pears, etc.", "We like fruit."]),
    ("Apples, pears, etc. and more.", ["Apples, pears, etc. and more."]),
    ("Apples, pears, etc.", ["Apples, pears, etc."]),
    ("He works at Acme Inc. The pay is good.", ["He works at Acme Inc.", "The pay is good."]),
    ("Acme Ltd. Was founded. Foo Co. Sells.", ["Acme Ltd.", "Was founded.", "Foo Co.", "Sells."]),
    (
        "He moved to the U.S. The weather was nice.",
        ["He moved to the U.S.", "The weather was nice."],
    ),
    ("The U.S. Army and the U.K. Parliament.", ["The U.S. Army and the U.K. Parliament."]),
    ("We left at 5 p.m. The rain stopped.", ["We left at 5 p.m.", "The rain stopped."]),
    ("At 9 a.m. Eastern time we start.", ["At 9 a.m. Eastern time we start."]),
    ("She has a Ph.D. in math.", ["She has a Ph.D. in math."]),
    # initials
    ("J. K. Rowling wrote it.", ["J. K. Rowling wrote it."]),
    ("A. Smith and B. Jones agreed.", ["A. Smith and B. Jones agreed."]),
    ("J.R.R. Tolkien wrote books.", ["J.R.R. Tolkien wrote books."]),
    ("He joined the F.B.I. The pay was low.", ["He joined the F.B.I.", "The pay was low."]),
    ("So do I. Then we left.", ["So do I.", "Then we left."]),
    ("I. M. Pei designed it.", ["I. M. Pei designed it."]),
    # decimals, versions, money
    ("Pi is 3.14. E is 2.718.", ["Pi is 3.14.", "E is 2.718."]),
    ("Use v2.0.1 now. Old is 1.9.", ["Use v2.0.1 now.", "Old is 1.9."]),
    ("They raised $4.5m. Then more.", ["They raised $4.5m.", "Then more."]),
    ("It was 2020. Then 2021.", ["It was 2020.", "Then 2021."]),
    # ellipses
    ("wait... what happened", ["wait... what happened"]),
    ("Wait… what? No!", ["Wait… what?", "No!"]),
    ("I thought... Then I knew.", ["I thought...", "Then I knew."]),
    ("Hmm. . . Next.", ["Hmm. . .", "Next."]),
    ("... and then", ["... and then"]),
    # URLs, emails, domains
    ("Visit example.com for more. Thanks.", ["Visit example.com for more.", "Thanks."]),
    ("Go to www.x.org/a.b today.", ["Go to www.x.org/a.b today."]),
    ("See https://a.b.io/x?y=1. Then go.", ["See https://a.b.io/x?y=1.", "Then go."]),
    ("Mail john.doe@mail.example.org please.", ["Mail john.doe@mail.example.org please."]),
    # newlines, paragraphs, bullets
    ("This line is\nwrapped here.", ["This line is\nwrapped here."]),
    ("First.\nSecond.", ["First.", "Second."]),
    ("First.\nsecond part", ["First.\nsecond part"]),
    ("Title\n\nBody text here", ["Title", "Body text here"]),
    ("Para one\r\n\r\nPara two", ["Para one", "Para two"]),
    ("Para one\n   \n  Para two", ["Para one", "Para two"]),
    ("Para one\u2029Para two", ["Para one", "Para two"]),
    ("Steps:\n- one\n- two\n* three\n• four", ["Steps:", "- one", "- two", "* three", "• four"]),
    (
        "Steps:\n1. Do this.\n2. Do that.\n3) Done",
        ["Steps:", "1. Do this.", "2. Do that.", "3) Done"],
    ),
    ("1. First item here", ["1. First item here"]),
    ("- item that\n  wraps over", ["- item that\n  wraps over"]),
    ("Options:\na. Red\nb. Blue", ["Options:", "a. Red", "b. Blue"]),
    # CJK
    ("今天天气很好。我们去公园吧！好吗？", ["今天天气很好。", "我们去公园吧！", "好吗？"]),
    ("「你好。」他说。", ["「你好。」", "他说。"]),
    ("日本語です。 English too.", ["日本語です。", "English too."]),
    ("He said so. 我知道了。", ["He said so.", "我知道了。"]),
    # emoji, zero-width, RTL, other scripts
    ("I love it 😀. You too? 👍🏽 Yes!", ["I love it 😀.", "You too? 👍🏽 Yes!"]),
    ("Family 👨‍👩‍👧. Next.", ["Family 👨‍👩‍👧.", "Next."]),
    ("zero\u200bwidth. Next\u200b one.", ["zero\u200bwidth.", "Next\u200b one."]),
    ("שלום. מה שלומך? טוב.", ["שלום.", "מה שלומך?", "טוב."]),
    ("مرحبا. كيف حالك؟ أنا بخير.", ["مرحبا.", "كيف حالك؟", "أنا بخير."]),
    ("Привет. как дела? Хорошо.", ["Привет.", "как дела?", "Хорошо."]),
    ("नमस्ते। आप कैसे हैं?", ["नमस्ते।", "आप कैसे हैं?"]),
    ("bad \ud800 surrogate. Next \udfff.", ["bad \ud800 surrogate.", "Next \udfff."]),
    # punctuation-only pieces are never sentences on their own
    ("!!!", ["!!!"]),
    ("?! Hello.", ["?! Hello."]),
]


def _check_invariants(text: str, sents: list[Sentence]) -> None:
    prev_end = 0
    for s in sents:
        assert isinstance(s, Sentence)
        assert text[s.start : s.end] == s.text
        assert s.text, "empty sentence"
        assert s.text == s.text.strip(), "not stripped"
        assert s.start >= prev_end, "overlapping or out of order"
        prev_end = s.end
    covered = [False] * len(text)
    for s in sents:
        for i in range(s.start, s.end):
            covered[i] = True
    for i, ch in enumerate(text):
        assert covered[i] or ch.isspace(), f"non-whitespace char {ch!r} at {i} not covered"


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[repr(c[0])[:40] for c in CASES])
def test_cases(text: str, expected: list[str]) -> None:
    sents = split_sentences(text)
    assert [s.text for s in sents] == expected
    _check_invariants(text, sents)


def test_offsets_with_leading_whitespace_and_astral_chars() -> None:
    text = "  😀 Hi. 𝔘𝔫𝔦 ok!\n"
    sents = split_sentences(text)
    assert sents == [Sentence(2, 7, "😀 Hi."), Sentence(8, 15, "𝔘𝔫𝔦 ok!")]


def test_sentence_is_frozen() -> None:
    s = Sentence(0, 1, "a")
    with pytest.raises(AttributeError):
        s.start = 3  # type: ignore[misc]


def test_abbreviation_table_has_no_periods_at_end() -> None:
    assert all(a and not a.endswith(".") for a in ABBREVIATIONS)


# Any code point, including lone surrogates, plus a bias towards the characters that matter.
_ANY = st.characters(codec=None, categories=None)
_TRICKY = st.sampled_from(
    [
        *".!?…。！？\"'’”»)]([“«- \n\r\t\u2029\u200b\u200d\u200f1aAZIé😀ש",
        *["Mr", "etc", "e.g", "U.S", "\r\n", "\n\n", "\n- ", "\n1. ", " A. ", "...", "\ud800"],
    ]
)
_TEXT = st.lists(st.one_of(st.text(_ANY, max_size=5), _TRICKY), max_size=60).map("".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(_ANY), _TEXT))
def test_property_split_invariants(text: str) -> None:
    _check_invariants(text, split_sentences(text))


def test_one_megabyte_input() -> None:
    para = (
        "Dr. Smith arrived at 5 p.m. on Jan. 5 with approx. 3.5 kg of fruit, e.g. apples. "
        "He said “Wait…” and left! Did he? See www.example.com/a.b for more, etc. The end.\n"
        "- a bullet\n\n今天很好。明天呢？ مرحبا. 😀 Ok.\n"
    )
    text = para * (1_000_000 // len(para) + 1)
    sents = split_sentences(text)
    assert len(sents) > 10_000
    assert all(text[s.start : s.end] == s.text for s in sents)
    # pathological shapes: long runs without spaces, of spaces, of punctuation, of initials
    for bad in (
        "a." * 200_000,
        " " * 500_000 + "x",
        "!" * 300_000,
        "A. " * 100_000,
        "\n" * 200_000,
    ):
        assert "".join(s.text for s in split_sentences(bad)).replace(" ", "") == "".join(
            bad.split()
        )
