"""Rule-based sentence splitting with exact code-point offsets.

Used by extractive summarization and answer-sentence selection. Pure Python (stdlib ``re``
and ``dataclasses`` only), linear time, and safe on any ``str`` (emoji, zero-width characters,
RTL text, lone surrogates: nothing is ever encoded).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ABBREVIATIONS", "Sentence", "split_sentences"]


@dataclass(frozen=True, slots=True)
class Sentence:
    """One sentence: ``original[start:end] == text``, with no surrounding whitespace."""

    start: int  # code-point offset into the original text
    end: int  # exclusive
    text: str  # == original[start:end]


# Every abbreviation the splitter knows, without its final period. An all-lowercase entry
# matches case-insensitively ("mr" matches "Mr", "MR"); an entry containing an uppercase
# letter matches exactly ("No" must not match the word "no", "U.S" must not match "u.s").
ABBREVIATIONS: frozenset[str] = frozenset(
    {
        # titles and name suffixes
        "mr", "mrs", "ms", "mx", "dr", "prof", "sr", "jr", "st", "mt", "rev", "hon",
        "messrs", "mme", "mlle", "Gen", "Col", "Lt", "Capt", "Sgt", "Gov", "Sen", "Rep",
        # Latin and scholarly
        "vs", "etc", "e.g", "i.e", "cf", "al", "approx", "ca", "viz", "ibid", "fig",
        "figs", "eq", "eqs", "vol", "vols", "p", "pp", "ed", "eds", "No", "Nos", "Sec", "Ch",
        "Ph.D", "PhD",
        # companies, places
        "inc", "ltd", "co", "corp", "bros", "Ave", "Blvd", "Rd", "Dept", "Univ",
        "U.S", "U.K", "U.S.A", "U.N", "E.U",
        # times and months
        "a.m", "p.m", "Jan", "Feb", "Mar", "Apr", "Jun", "Jul", "Aug", "Sep", "Sept", "Oct",
        "Nov", "Dec",
    }
)  # fmt: skip

# Subsets of ABBREVIATIONS that may also end a sentence. All other abbreviations (titles
# such as Mr./Dr./Prof./St., "e.g.", "No.", "Fig.", months, ...) never end one.
# These end the sentence when followed by whitespace and a capitalised (or uncased) word.
_ENDS_BEFORE_CAPITAL: frozenset[str] = frozenset({"etc", "inc", "ltd", "co", "corp"})
# These end the sentence only when followed by a word that usually starts a sentence
# ("in the U.S. The ..." splits, "the U.S. Army" does not).
_ENDS_BEFORE_STARTER: frozenset[str] = frozenset(
    {"U.S", "U.K", "U.S.A", "U.N", "E.U", "a.m", "p.m", "Ph.D", "PhD", "jr", "sr", "al"}
)
assert _ENDS_BEFORE_CAPITAL <= ABBREVIATIONS and _ENDS_BEFORE_STARTER <= ABBREVIATIONS

_COMMON_STARTERS: frozenset[str] = frozenset(
    {
        "A", "After", "All", "Also", "Although", "An", "And", "As", "At", "Because",
        "Before", "But", "By", "During", "For", "From", "He", "Her", "His", "How",
        "However", "I", "If", "In", "It", "Its", "Many", "Most", "My", "No", "Now", "On",
        "Our", "She", "Since", "So", "Some", "That", "The", "Their", "Then", "There",
        "These", "They", "This", "Those", "Thus", "To", "We", "What", "When", "Where",
        "While", "Who", "Why", "Yes", "Yet", "You",
    }
)  # fmt: skip

_TERMINALS = ".!?…。！？｡؟۔।॥"
_CJK_TERMINALS = "。！？｡"
_CLOSERS = "\"'’”»›)]}」』】〕〉》）］｝"
_OPENERS = "\"'‘“«‹([{„‚¿¡「『【〔〈《（［｛"
_LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"

_T = f"[{re.escape(_TERMINALS)}]"
_C = f"[{re.escape(_CLOSERS)}]"
_LBC = f"[{re.escape(_LINE_BREAKS)}]"
_HWS = f"[^\\S{re.escape(_LINE_BREAKS)}]"  # whitespace other than line breaks
# Candidate boundary: a whole run of terminal punctuation plus closing quotes/brackets, that
# either contains a CJK terminal or is followed by whitespace / the end. The look-behind makes
# the engine try each run only at its start, and possessive quantifiers never backtrack, so
# the scan is linear.
_CJK_T = f"[{re.escape(_CJK_TERMINALS)}]"
_PUNCT = re.compile(
    f"{_T}(?<!{_T}{_T})"  # starts with a terminal (fast scan) that does not follow one
    f"(?:(?<={_CJK_T}){_T}*+{_C}*+"  # ... which is CJK,
    f"|{_T}*?{_CJK_T}{_T}*+{_C}*+"  # or the run contains CJK,
    f"|{_T}*+{_C}*+(?=\\s|\\Z))"  # or the run is followed by whitespace / the end
)
_CJK = re.compile(_CJK_T)
_WS_RUN = re.compile(r"\s+")
# Text that makes a piece a sentence rather than stray punctuation.
_CONTENT = re.compile(f"[^\\s{re.escape(_TERMINALS + _CLOSERS + _OPENERS)}]")
# A list marker at the start of a line, followed by whitespace.
_BULLET = re.compile(
    r"(?:[-*+•‣◦▪▫●○■□◆◇➢➤→·⁃]|\d{1,3}[.)]|\(\w{1,3}\)|[a-z][.)]|[A-Z]\)"
    r"|(?:[ivx]{1,4}|[IVX]{1,4})[.)])(?=\s)"
)
# A hard break, from its first line break to the end of the whitespace run: U+2029, or a line
# break followed on the same whitespace run by another one (blank line) or by a list marker.
_HARD_BREAK = re.compile(f"(?:\u2029|(?>\r\n|{_LBC})(?={_HWS}*+(?:{_LBC}|{_BULLET.pattern})))\\s*+")
_LIST_NUMBER = re.compile(r"\d{1,3}(?:\.\d{1,3})*|[A-Za-z]|[ivx]{1,4}|[IVX]{1,4}")
_INITIAL = re.compile(r"[A-Z]\.(?:\s|$)")
_WORD = re.compile(r"\w+")
_TOKEN_TAIL = re.compile(r"\S*+\Z")  # searched with endpos: the token ending there
_DOTTED_CAPITALS = re.compile(r"(?:[A-Z]\.)+[A-Z]")
_MAX_TOKEN = 16  # longest token inspected for abbreviations (keeps the scan bounded)


def split_sentences(text: str) -> list[Sentence]:
    """Split ``text`` into sentences with exact offsets (``text[s.start:s.end] == s.text``).

    Rules:

    * A sentence ends after a run of ``. ! ? …`` (also ``؟ ۔ । ॥``) plus any closing quotes or
      brackets (``" ' ’ ” » ) ]`` ...), when it is followed by whitespace and then something
      that can start a sentence: an uppercase letter, a digit, an opening quote/bracket or a
      non-Latin letter. So ``wait... what`` and ``"Why?" he asked`` stay whole.
    * CJK ``。！？`` end a sentence whatever follows, with or without whitespace.
    * Blank lines (paragraph breaks, also U+2029) and line breaks before a list marker
      (``-``, ``*``, ``•``, ``1.``, ``2)``, ``a.``, ...) always end a sentence. Any other
      line break is ordinary whitespace: wrapped lines are joined unless the line ends with
      terminal punctuation and the rule above applies.
    * No break after a known abbreviation (``ABBREVIATIONS``), a single-letter initial
      (``J. K. Rowling``; not ``I``), or a list number at the start of a paragraph/item.
      Exceptions: ``etc. Inc. Ltd. Co. Corp.`` end a sentence before a capitalised word;
      ``U.S. U.K. a.m. p.m. Ph.D. Jr. Sr. al.`` and unknown dotted capitals (``F.B.I.``)
      only before a common sentence opener such as ``The``/``He``/``In``. Titles
      (``Mr. Dr. Prof. St.``) never end a sentence.
    * A period with no whitespace after it never ends a sentence (``3.14``, ``v2.0.1``,
      ``example.com``, ``a@b.org``).
    * Spans exclude surrounding whitespace; pieces consisting only of punctuation are merged
      into the following sentence; empty sentences are never returned, so empty or
      whitespace-only text gives ``[]`` and text without terminal punctuation is one sentence.
    """
    out: list[Sentence] = []
    seg_start = 0
    for brk_start, brk_end in _hard_breaks(text):
        _split_segment(text, seg_start, brk_start, out)
        seg_start = brk_end
    _split_segment(text, seg_start, len(text), out)
    return out


# --------------------------------------------------------------------------- internals


def _hard_breaks(text: str) -> list[tuple[int, int]]:
    """Whitespace runs that always separate sentences: blank lines and breaks before bullets."""
    breaks: list[tuple[int, int]] = []
    for m in _HARD_BREAK.finditer(text):
        run_start = m.start()
        while run_start > 0 and text[run_start - 1].isspace():
            run_start -= 1  # trailing blanks of the previous line
        breaks.append((run_start, m.end()))
    return breaks


def _split_segment(text: str, seg_start: int, seg_end: int, out: list[Sentence]) -> None:
    """Split one paragraph/list item ``text[seg_start:seg_end]`` at terminal punctuation."""
    lead = _WS_RUN.match(text, seg_start, seg_end)
    first = lead.end() if lead is not None else seg_start  # first non-whitespace
    sent_start = seg_start
    checked = seg_start  # text[sent_start:checked] has been searched for content
    has_content = False
    for m in _PUNCT.finditer(text, seg_start, seg_end):
        p, r = m.start(), m.end()
        if not has_content:
            has_content = _CONTENT.search(text, checked, p) is not None
        checked = r
        if has_content and _is_boundary(text, m, seg_start, seg_end, first):
            _append_stripped(text, sent_start, r, out)
            sent_start = checked = r
            has_content = False
    _append_stripped(text, sent_start, seg_end, out)


def _is_boundary(text: str, m: re.Match[str], seg_start: int, seg_end: int, first: int) -> bool:
    p, r = m.start(), m.end()
    if r >= seg_end:
        return False  # the segment ends here anyway
    if _CJK.search(text, p, r) is not None:
        return True
    ws = _WS_RUN.match(text, r, seg_end)
    if ws is None:
        return False  # "3.14", "example.com", "e.g.," ...
    nxt = ws.end()
    if nxt >= seg_end:
        return False
    c = text[nxt]
    if not _can_start_sentence(c):
        return False
    if r - p != 1 or text[p] != ".":
        return True  # "!", "?", "...", or a period followed by closers
    # A single period: look at the token before it.
    limit = max(seg_start, p - _MAX_TOKEN - 1)
    tail = _TOKEN_TAIL.search(text, limit, p)
    assert tail is not None  # "\S*" matches at p at the latest
    tok_start = tail.start()
    if tok_start == limit > seg_start and not text[limit - 1].isspace():
        return True  # too long to be an abbreviation
    raw = text[tok_start:p]
    tok = raw.lstrip(_OPENERS)
    if not tok:
        return True
    if tok_start == first and _LIST_NUMBER.fullmatch(raw) is not None:
        return False  # "1. First step", "b. second item" at the start of an item
    key = _abbreviation(tok)
    if key is not None:
        if key in _ENDS_BEFORE_CAPITAL:
            return c.isalpha() and not c.islower()
        if key in _ENDS_BEFORE_STARTER:
            return _starter_word_at(text, nxt, seg_end)
        return False
    if _DOTTED_CAPITALS.fullmatch(tok) is not None:  # "J.R.R. Tolkien", "the F.B.I. The"
        return _starter_word_at(text, nxt, seg_end)
    if len(tok) == 1 and tok.isupper():
        if tok != "I":
            return False  # an initial: "J. K. Rowling", "A. Smith"
        return _INITIAL.match(text, nxt) is None  # "I. M. Pei" vs "So do I. Then ..."
    return True


def _starter_word_at(text: str, pos: int, end: int) -> bool:
    word = _WORD.match(text, pos, end)
    return word is not None and word.group() in _COMMON_STARTERS


def _abbreviation(tok: str) -> str | None:
    if tok in ABBREVIATIONS:
        return tok
    low = tok.lower()
    return low if low in ABBREVIATIONS else None


def _can_start_sentence(c: str) -> bool:
    if c.isupper() or c.istitle() or c.isdigit() or c in _OPENERS:
        return True
    return c.isalpha() and not _is_latin(c)


def _is_latin(c: str) -> bool:
    o = ord(c)
    return (
        o < 0x2B0  # ASCII, Latin-1, Latin Extended-A/B, IPA
        or 0x1D00 <= o < 0x1DC0  # phonetic extensions
        or 0x1E00 <= o < 0x1F00  # Latin Extended Additional
        or 0x2C60 <= o < 0x2C80  # Latin Extended-C
        or 0xA720 <= o < 0xA800  # Latin Extended-D
        or 0xAB30 <= o < 0xAB70  # Latin Extended-E
        or 0xFB00 <= o < 0xFB07  # Latin ligatures
        or 0xFF21 <= o <= 0xFF5A  # fullwidth Latin
    )


def _append_stripped(text: str, start: int, end: int, out: list[Sentence]) -> None:
    piece = text[start:end]
    stripped = piece.strip()
    if stripped:
        s = start + len(piece) - len(piece.lstrip())
        out.append(Sentence(s, s + len(stripped), stripped))
