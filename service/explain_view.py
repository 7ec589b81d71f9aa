"""Show an Explanation (what the model attended to) over its text: in a terminal or as HTML.

Pure functions of (text, Explanation): the CLI prints `terminal(...)` and writes
`html_page(...)`; tests call them on hand-built messages. Offsets are code points, so
`text[start:end]` is a token's text whatever the script (é, 東京, emoji).
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

# (title, text, explanation); Any: the generated protobuf classes are not typed for mypy.
Section = tuple[str, str, Any]

WHITE = (255, 255, 255)
STRONG = (214, 39, 40)  # the colour of the explanation's strongest token
TOP = 5  # tokens listed in the legend


@dataclass(frozen=True)
class _Segment:
    """A stretch of text drawn as one: a token, or tokens that cover the same characters."""

    start: int
    end: int
    tokens: tuple[str, ...]
    weight: float


def weight_colour(share: float) -> tuple[int, int, int]:
    """White at 0, STRONG at 1 (share: a weight over the explanation's largest)."""
    share = min(max(share, 0.0), 1.0)
    r, g, b = (round(w + (s - w) * share) for w, s in zip(WHITE, STRONG, strict=True))
    return r, g, b


def _segments(text: str, explanation: Any) -> list[_Segment]:
    """The tokens that cover text, in order, without overlaps.

    Tokens with no characters (special tokens) or past the text's end are not drawn.
    A token that overlaps the one before (byte-level BPE can split one emoji into two
    tokens over the same code point) joins it, their weights summed, since spans can't
    overlap and the characters drew both.
    """
    spans = sorted(
        (min(t.start, len(text)), min(t.end, len(text)), t.token, t.weight)
        for t in explanation.tokens
    )
    out: list[_Segment] = []
    for start, end, token, weight in spans:
        if end <= start:
            continue
        if out and start < out[-1].end:
            last = out[-1]
            out[-1] = _Segment(
                last.start, max(last.end, end), (*last.tokens, token), last.weight + weight
            )
        else:
            out.append(_Segment(start, end, (token,), weight))
    return out


def _largest(segments: Sequence[_Segment]) -> float:
    # Scale to the strongest drawn segment, so it is fully coloured; 0 would divide by 0.
    return max((s.weight for s in segments), default=0.0) or 1.0


def _top(explanation: Any) -> list[tuple[str, float]]:
    ranked = sorted(explanation.tokens, key=lambda t: t.weight, reverse=True)[:TOP]
    return [(t.token, t.weight) for t in ranked]


def _about(explanation: Any) -> str:
    return f"method {explanation.method or '-'} · target {explanation.target or '-'}"


def use_colour(stream: IO[str]) -> bool:
    """Colour only for a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and not os.environ.get("NO_COLOR")


def _ansi(text: str, rgb: tuple[int, int, int]) -> str:
    # 24-bit background, black text so it reads on any terminal theme.
    return f"\x1b[48;2;{rgb[0]};{rgb[1]};{rgb[2]}m\x1b[38;2;0;0;0m{text}\x1b[0m"


def terminal(text: str, explanation: Any, colour: bool = True) -> str:
    """The text with its tokens coloured by weight, then a legend line.

    colour=False: no escape codes; the top tokens are marked `[word 0.31]` instead,
    so piped output stays readable.
    """
    segments = _segments(text, explanation)
    largest = _largest(segments)
    marked = {s.start for s in sorted(segments, key=lambda s: s.weight, reverse=True)[:TOP]}
    parts: list[str] = []
    pos = 0
    for s in segments:
        parts.append(text[pos : s.start])  # gaps between tokens stay as they are
        piece = text[s.start : s.end]
        if colour:
            parts.append(_ansi(piece, weight_colour(s.weight / largest)))
        elif s.start in marked:
            parts.append(f"[{piece} {s.weight:.2f}]")
        else:
            parts.append(piece)
        pos = s.end
    parts.append(text[pos:])
    top = ", ".join(f"{token} {weight:.3f}" for token, weight in _top(explanation))
    scale = ""
    if colour:
        bar = "".join(_ansi(" ", weight_colour(i / 7)) for i in range(8))
        scale = f"  0 {bar} {largest:.3f}"
    return f"{''.join(parts)}\n{_about(explanation)} · top: {top or '-'}{scale}"


_CSS = """
body { font: 16px/1.7 "DejaVu Sans", Verdana, sans-serif; margin: 24px; color: #111;
       background: #fff; max-width: 60em; }
h1 { font-size: 20px; margin: 0 0 16px; }
h2 { font-size: 17px; margin: 0 0 4px; }
section { border: 1px solid #ddd; border-radius: 6px; padding: 12px 16px; margin: 0 0 16px; }
.meta, .top { color: #555; font-size: 14px; margin: 0 0 8px; }
.text { white-space: pre-wrap; margin: 8px 0; }
.t { border-radius: 2px; }
.legend { display: flex; align-items: center; gap: 8px; font-size: 13px; color: #555; }
.bar { display: inline-block; width: 200px; height: 12px; border: 1px solid #ccc; }
code { font-family: "DejaVu Sans Mono", monospace; }
"""


def _rgb(rgb: tuple[int, int, int]) -> str:
    return f"rgb({rgb[0]},{rgb[1]},{rgb[2]})"


def _section_html(title: str, text: str, explanation: Any) -> str:
    esc = html.escape
    segments = _segments(text, explanation)
    largest = _largest(segments)
    body: list[str] = []
    pos = 0
    for s in segments:
        body.append(esc(text[pos : s.start]))
        tip = f"{' + '.join(s.tokens)}: {s.weight:.4f}"
        body.append(
            f'<span class="t" style="background:{_rgb(weight_colour(s.weight / largest))}" '
            f'data-weight="{s.weight:.6f}" title="{esc(tip)}">{esc(text[s.start : s.end])}</span>'
        )
        pos = s.end
    body.append(esc(text[pos:]))
    top = ", ".join(f"<code>{esc(t)}</code> {w:.3f}" for t, w in _top(explanation))
    gradient = f"linear-gradient(to right, {_rgb(WHITE)}, {_rgb(STRONG)})"
    return (
        f"<section>\n<h2>{esc(title)}</h2>\n"
        f'<p class="meta">method <code>{esc(explanation.method or "-")}</code> · '
        f"target <code>{esc(explanation.target or '-')}</code></p>\n"
        f'<div class="legend">weight 0 <span class="bar" style="background:{gradient}"></span> '
        f"{largest:.3f} (the strongest token)</div>\n"
        f'<div class="text">{"".join(body)}</div>\n'
        f'<p class="top">top tokens: {top or "-"}</p>\n</section>\n'
    )


def html_page(sections: Sequence[Section], heading: str = "What the model attended to") -> str:
    """One self-contained page (inline CSS; no scripts, fonts or network) for the sections."""
    body = "".join(_section_html(*s) for s in sections) or "<p>No explanations.</p>\n"
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(heading)}</title>\n<style>{_CSS}</style>\n</head>\n"
        f"<body>\n<h1>{html.escape(heading)}</h1>\n{body}</body>\n</html>\n"
    )


def sections_for(command: str, source: str | Sequence[str], reply: Any) -> list[Section]:
    """(title, text, explanation) for each explanation in a reply.

    source: the text the request sent (answer: the context; summarize: the text) or, for
    embed, its texts. Explanations the reply lacks are left out (zip stops at the shorter).
    """
    texts = [source] if isinstance(source, str) else list(source)
    if command == "answer":
        return [
            (f"answer {i + 1}: {a.text!r} (score {a.score:.3f})", texts[0], e)
            for i, (a, e) in enumerate(zip(reply.answers, reply.explanations, strict=False))
        ]
    if command == "summarize":
        summary = reply.summary if len(reply.summary) <= 80 else reply.summary[:79] + "…"
        return [(f"summary: {summary}", texts[0], e) for e in reply.explanations]
    if command == "embed":
        return [
            (f"text {i + 1}", text, e)
            for i, (text, e) in enumerate(zip(texts, reply.explanations, strict=False))
        ]
    raise ValueError(f"no explanations for command {command!r}")
