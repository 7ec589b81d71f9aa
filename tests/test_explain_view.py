"""Explanations as a user sees them: in the terminal, in a browser, and through the CLI.

The browser test renders the page in headless Chromium and reads the colours back from the
screenshot at each token's box, so a page that looks wrong (offsets, escaping, the scale)
fails. Run this file as a script to regenerate docs/explain-page.png:

    .venv/bin/python -m tests.test_explain_view
"""

from __future__ import annotations

import html
import io
import json
import re
import shutil
import struct
import subprocess
import tempfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import grpc
import pytest

from service import explain_view
from service.api.protos.attnserve.v1 import attnserve_pb2 as pb
from service.api.protos.attnserve.v1 import attnserve_pb2_grpc as pb_grpc
from service.cli import main
from service.explain_view import STRONG, WHITE, html_page, sections_for, terminal, weight_colour

ROOT = Path(__file__).resolve().parent.parent
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def explanation(
    text: str, tokens: Sequence[tuple[str, float]], target: str = "answer 0 over context"
) -> pb.Explanation:
    """Tokens found in text in order ("##ing": a sub-word, covering "ing"), weights made to
    sum to 1, as the server sends them."""
    total = sum(w for _, w in tokens)
    out, pos = [], 0
    for token, weight in tokens:
        start = text.index(token.removeprefix("##"), pos)
        pos = start + len(token.removeprefix("##"))
        out.append(pb.TokenWeight(token=token, start=start, end=pos, weight=weight / total))
    return pb.Explanation(tokens=out, method="rollout", target=target)


# A question-answering context with plausible rollout weights for "When did the Eiffel Tower
# open to the public?" (answer: "31 March 1889"): the README's screenshot.
QUESTION = "When did the Eiffel Tower open to the public?"
ANSWER = "31 March 1889"
CONTEXT = (
    "The Eiffel Tower was built as the entrance arch to the 1889 World's Fair in Paris. "
    "It opened to the public on 31 March 1889, after two years of construction. "
    "Gustave Eiffel's engineering company designed and built the tower."
)
_WORDPIECES = (
    "The E ##iff ##el Tower was built as the entrance arch to the 1889 World ' s Fair in "
    "Paris . It opened to the public on 31 March 1889 , after two years of construction . "
    "Gus ##tave E ##iff ##el ' s engineering company designed and built the tower ."
)
_STRONG_WORDS = {"opened": 9, "public": 6, "on": 4, "31": 16, "March": 14, "It": 3}
_CONTEXT_TOKENS = [
    # The second 1889 is the answer's; the first, the fair's.
    (t, 12.0 if t == "1889" and i > 20 else float(_STRONG_WORDS.get(t, 1)))
    for i, t in enumerate(str.split(_WORDPIECES))
]


def example() -> list[explain_view.Section]:
    start = CONTEXT.index(ANSWER)
    reply = pb.AnswerResponse(
        answers=[pb.Span(text=ANSWER, score=0.912, start=start, end=start + len(ANSWER))],
        explanations=[explanation(CONTEXT, _CONTEXT_TOKENS)],
    )
    return sections_for("answer", CONTEXT, reply)


class Spans(HTMLParser):
    """The token spans of a page, as a browser parses them: attributes and text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.spans: list[dict[str, Any]] = []
        self.title = ""
        self._in: dict[str, Any] | None = None
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "span" and ("class", "t") in attrs:
            self._in = {**dict(attrs), "text": ""}
            self.spans.append(self._in)
        self._in_title = tag == "title"

    def handle_endtag(self, tag: str) -> None:
        if tag == "span":
            self._in = None
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in is not None:
            self._in["text"] += data
        if self._in_title:
            self.title += data


def spans_of(page: str) -> Spans:
    parser = Spans()
    parser.feed(page)
    return parser


# Sub-words, a gap the tokenizer dropped ("  "), combining characters, CJK, an emoji that a
# byte-level tokenizer splits into two tokens over the same code point, and HTML.
TRICKY = "café walking  東京 🎉 <script>document.title=\"pwned\"</script> & 'q'"
TRICKY_TOKENS = [
    pb.TokenWeight(token="[CLS]", start=0, end=0, weight=0.05),  # no characters
    pb.TokenWeight(token="café", start=0, end=4, weight=0.10),
    pb.TokenWeight(token="walk", start=5, end=9, weight=0.05),
    pb.TokenWeight(token="##ing", start=9, end=12, weight=0.31),
    pb.TokenWeight(token="東", start=14, end=15, weight=0.04),
    pb.TokenWeight(token="京", start=15, end=16, weight=0.06),
    pb.TokenWeight(token="\u00f0\u0141", start=17, end=18, weight=0.02),  # 🎉, byte 1-2
    pb.TokenWeight(token="\u0130\u012b", start=17, end=18, weight=0.03),  # 🎉, byte 3-4
    pb.TokenWeight(token="<", start=19, end=20, weight=0.08),
    pb.TokenWeight(token="script", start=20, end=26, weight=0.12),
    pb.TokenWeight(token='"pwned"', start=42, end=49, weight=0.09),
    pb.TokenWeight(token="&", start=59, end=60, weight=0.02),
    pb.TokenWeight(token="'q'", start=61, end=64, weight=0.03),
]


def tricky() -> pb.Explanation:
    return pb.Explanation(tokens=TRICKY_TOKENS, method="attention:6", target="embedding of text 0")


def test_the_tricky_offsets_are_what_they_claim() -> None:
    # The fixture itself: code-point offsets, so Python slicing is the token's text.
    assert [TRICKY[t.start : t.end] for t in TRICKY_TOKENS[1:6]] == [
        "café",
        *["walk", "ing", "東", "京"],
    ]
    assert TRICKY[17] == "🎉" and TRICKY[42:49] == '"pwned"' and TRICKY[61:64] == "'q'"
    assert abs(sum(t.weight for t in TRICKY_TOKENS) - 1) < 1e-9


def test_terminal_without_colour_keeps_the_text_and_marks_the_top_tokens() -> None:
    out = terminal(TRICKY, tricky(), colour=False)
    text, legend = out.split("\n")
    assert "\x1b" not in out
    # The five strongest drawn stretches are marked with their weights; the rest is the text.
    assert "walk[ing 0.31]" in text and "[café 0.10]" in text and "[script 0.12]" in text
    assert '["pwned" 0.09]' in text and "[< 0.08]" in text and "[東" not in text
    assert re.sub(r"\[(.*?) \d\.\d\d\]", r"\1", text) == TRICKY
    assert legend.startswith("method attention:6 · target embedding of text 0 · top: ##ing 0.310")
    assert legend.count(", ") == 4  # the top 5 tokens


def test_terminal_colours_each_token_by_its_share_of_the_strongest() -> None:
    out = terminal(TRICKY, tricky(), colour=True)
    text, legend = out.split("\n")
    assert ANSI.sub("", text) == TRICKY  # the colour codes add nothing else
    coloured = re.findall(r"\x1b\[48;2;(\d+);(\d+);(\d+)m\x1b\[38;2;0;0;0m(.*?)\x1b\[0m", text)
    pieces = {piece: tuple(map(int, rgb)) for *rgb, piece in coloured}
    assert pieces["ing"] == STRONG  # the strongest is fully coloured
    assert pieces["walk"] == weight_colour(0.05 / 0.31)
    assert pieces["🎉"] == weight_colour(0.05 / 0.31)  # its two tokens, summed
    assert "  東" in ANSI.sub("|", text).replace("|", "")  # the gap stays uncoloured
    assert re.search(r"ing\x1b\[0m  \x1b\[48", text)
    assert "method attention:6 · target embedding of text 0" in legend and "0.310" in legend


def test_colour_only_on_a_terminal_and_never_with_no_color(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Tty:
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert explain_view.use_colour(Tty())  # type: ignore[arg-type]
    assert not explain_view.use_colour(io.StringIO())  # piped
    monkeypatch.setenv("NO_COLOR", "1")
    assert not explain_view.use_colour(Tty())  # type: ignore[arg-type]


def test_html_spans_cover_the_right_characters_and_escape_everything() -> None:
    page = html_page([('text 1 <b>"x"</b>', TRICKY, tricky())])
    assert "<script" not in page and "<b>" not in page  # the text's HTML stays text
    assert "&lt;/script&gt;" in page and "text 1 &lt;b&gt;&quot;x&quot;&lt;/b&gt;" in page
    assert "http" not in page and "@import" not in page and "<link" not in page
    parsed = spans_of(page)
    drawn = [t for t in TRICKY_TOKENS if t.end > t.start]
    assert [s["text"] for s in parsed.spans] == [
        "café", "walk", "ing", "東", "京", "🎉", "<", "script", '"pwned"', "&", "'q'",
    ]  # fmt: skip
    by_text = {s["text"]: s for s in parsed.spans}
    assert float(by_text["ing"]["data-weight"]) == pytest.approx(0.31)
    assert float(by_text["🎉"]["data-weight"]) == pytest.approx(0.05)
    assert by_text["ing"]["title"] == "##ing: 0.3100"
    assert by_text['"pwned"']["title"] == '"pwned": 0.0900'
    assert by_text["ing"]["style"] == "background:rgb({},{},{})".format(*STRONG)
    assert len(parsed.spans) == len(drawn) - 1  # the emoji's two tokens are one span
    for part in ("method <code>attention:6</code>", "target <code>embedding of text 0</code>"):
        assert part in page
    assert 'class="bar"' in page and "0.310 (the strongest token)" in page


def test_html_text_between_spans_is_the_text() -> None:
    page = html_page([("t", TRICKY, tricky())])
    body = page.split('<div class="text">')[1].split("</div>")[0]
    assert html.unescape(re.sub(r"<[^>]+>", "", body)) == TRICKY


def test_sections_for_each_command() -> None:
    e = explanation("a b", [("a", 1), ("b", 3)])
    answer = pb.AnswerResponse(answers=[pb.Span(text="b", score=0.5)] * 2, explanations=[e, e])
    assert [s[0] for s in sections_for("answer", "a b", answer)] == [
        "answer 1: 'b' (score 0.500)",
        "answer 2: 'b' (score 0.500)",
    ]
    summary = pb.SummarizeResponse(summary="x" * 100, explanations=[e])
    ((title, text, _),) = sections_for("summarize", "a b", summary)
    assert title == "summary: " + "x" * 79 + "…" and text == "a b"
    embed = pb.EmbedResponse(explanations=[e, e])
    assert [s[:2] for s in sections_for("embed", ["a b", "c"], embed)] == [
        ("text 1", "a b"),
        ("text 2", "c"),
    ]
    assert html_page([]).count("No explanations.") == 1


# --- In a browser -------------------------------------------------------------------------

WIDTH, HEIGHT = 1000, 700
# Added to the test's copy of the page: each span's box and text, for --dump-dom.
MEASURE = """<script>
for (const e of document.querySelectorAll("span.t")) {
  const r = e.getBoundingClientRect();
  e.dataset.box = [r.left, r.top, r.right, r.bottom, e.getClientRects().length].join(" ");
}
</script>"""


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(binary: str, page: Path, *flags: str, height: int = HEIGHT) -> str:
    profile = page.parent / "profile"
    result = subprocess.run(
        [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--force-device-scale-factor=1", f"--user-data-dir={profile}",
         f"--window-size={WIDTH},{height}", *flags, page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def screenshot(binary: str, page: str, png: Path, height: int = HEIGHT) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "page.html"
        path.write_text(page, encoding="utf-8")
        chromium(binary, path, f"--screenshot={png.resolve()}", height=height)
    assert png.exists()


def read_png(path: Path) -> tuple[int, int, Callable[[int, int], tuple[int, int, int]]]:
    """Width, height and pixel(x, y): Pillow where installed, else this small decoder."""
    try:
        from PIL import Image
    except ImportError:
        return decode_png(path.read_bytes())
    image = Image.open(path).convert("RGB")
    return image.width, image.height, lambda x, y: image.getpixel((x, y))  # type: ignore[return-value]


def decode_png(data: bytes) -> tuple[int, int, Callable[[int, int], tuple[int, int, int]]]:
    """An 8-bit RGB or RGBA, non-interlaced PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        header = body if kind == b"IHDR" else header
        idat += body if kind == b"IDAT" else b""
        pos += 12 + length
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour_type in (2, 6) and interlace == 0, header
    bpp = 3 if colour_type == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    rows: list[bytearray] = []
    prior = bytearray(stride)
    for y in range(height):
        kind, line = (
            raw[y * (stride + 1)],
            bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)]),
        )
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prior[i], prior[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb_, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (
                    line[i] + (a if pa <= pb_ and pa <= pc else b if pb_ <= pc else c)
                ) & 0xFF
        rows.append(line)
        prior = line

    def pixel(x: int, y: int) -> tuple[int, int, int]:
        r, g, b = rows[y][x * bpp : x * bpp + 3]
        return r, g, b

    return width, height, pixel


def boxes(dom: str) -> Iterator[tuple[dict[str, Any], tuple[float, float, float, float]]]:
    for span in spans_of(dom).spans:
        left, top, right, bottom, lines = map(float, span["data-box"].split())
        if lines == 1:  # a token that wraps over two lines has no one box
            yield span, (left, top, right, bottom)


def background(pixel: Callable[[int, int], tuple[int, int, int]], box: Sequence[float]) -> Any:
    """The commonest colour inside the box: the background, not the glyphs over it."""
    left, top, right, bottom = (int(v) for v in box)
    inside = [pixel(x, y) for x in range(left + 1, right - 1) for y in range(top + 2, bottom - 2)]
    return Counter(inside).most_common(1)[0][0]


def close(a: Sequence[int], b: Sequence[int], slack: int = 4) -> bool:
    return all(abs(x - y) <= slack for x, y in zip(a, b, strict=True))


def reversed_weights(e: pb.Explanation) -> pb.Explanation:
    """The same tokens with their weights swapped end for end: strongest ↔ weakest."""
    ranked = sorted(range(len(e.tokens)), key=lambda i: e.tokens[i].weight)
    out = pb.Explanation()
    out.CopyFrom(e)
    for low, high in zip(ranked, reversed(ranked), strict=True):
        out.tokens[low].weight = e.tokens[high].weight
    return out


@pytest.fixture(scope="module")
def browser() -> str:
    binary = chromium_binary()
    if binary is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium)")
    return binary


def test_the_page_in_a_browser_shows_the_weights_as_colours(browser: str, tmp_path: Path) -> None:
    ((title, text, e),) = example()
    sections = [
        (title, text, e),
        ("the same, weights swapped end for end", text, reversed_weights(e)),
        ("tricky text", TRICKY, tricky()),
    ]
    page = html_page(sections)
    png = tmp_path / "page.png"
    screenshot(browser, page, png, height=1100)
    measured = tmp_path / "measured.html"
    measured.write_text(page.replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    dom = chromium(browser, measured, "--dump-dom", height=1100)
    width, height, pixel = read_png(png)
    assert (width, height) == (WIDTH, 1100)
    parsed = spans_of(dom)
    assert parsed.title == "What the model attended to"  # the text's <script> did not run
    # Each section's spans, in order; the browser read the same characters as Python.
    drawn = {s: [t for t in sections[s][2].tokens if t.end > t.start] for s in range(2)}
    spans = list(boxes(dom))
    assert len(spans) >= len(drawn[0]) * 2 + 10
    first, second = spans[: len(drawn[0])], spans[len(drawn[0]) : 2 * len(drawn[0])]
    assert [s["text"] for s, _ in first] == [CONTEXT[t.start : t.end] for t in drawn[0]]
    assert [s["text"] for s, _ in spans[2 * len(drawn[0]) :]] == [
        "café", "walk", "ing", "東", "京", "🎉", "<", "script", '"pwned"', "&", "'q'",
    ]  # fmt: skip
    for (span, box), token in zip(first + second, drawn[0] + drawn[1], strict=True):
        assert box[3] < height  # on the screenshot
        assert float(span["data-weight"]) == pytest.approx(token.weight, abs=1e-6)
    # Every token is drawn in its weight's colour, read back from the screen.
    for section in (first, second):
        largest = max(float(s["data-weight"]) for s, _ in section)
        for span, box in section:
            want = weight_colour(float(span["data-weight"]) / largest)
            assert close(background(pixel, box), want), (span["text"], background(pixel, box))
    strongest = max(range(len(first)), key=lambda i: float(first[i][0]["data-weight"]))
    weakest = min(range(len(first)), key=lambda i: float(first[i][0]["data-weight"]))
    assert first[strongest][0]["text"] == "31"
    assert close(background(pixel, first[strongest][1]), STRONG)
    assert background(pixel, first[weakest][1])[1] > 235  # near white
    # Swapped weights: the answer's token is now near white and the weakest fully coloured.
    assert background(pixel, second[strongest][1])[1] > 235
    assert close(background(pixel, second[weakest][1]), STRONG)
    assert background(pixel, first[strongest][1]) != background(pixel, second[strongest][1])


def test_the_png_decoder_reads_what_chromium_writes(browser: str, tmp_path: Path) -> None:
    page = html_page(
        [("s", "strong weak", explanation("strong weak", [("strong", 9), ("weak", 1)]))]
    )
    png = tmp_path / "small.png"
    screenshot(browser, page, png, height=300)
    width, height, pixel = decode_png(png.read_bytes())
    assert (width, height) == (WIDTH, 300)
    colours = Counter(pixel(x, y) for x in range(0, width, 3) for y in range(0, height, 3))
    assert colours.most_common(1)[0][0] == WHITE
    assert any(close(c, STRONG) for c in colours)


# --- Through the CLI ----------------------------------------------------------------------


class FakeTextInference(pb_grpc.TextInferenceServicer):
    """Answers with canned results and an explanation over whatever text was sent."""

    def __init__(self) -> None:
        self.requests: list[Any] = []

    def _explain(self, request: Any, text: str, target: str) -> list[pb.Explanation]:
        self.requests.append(request)
        if not request.explain:
            return []
        words = text.split()
        e = explanation(text, [(w, i + 1.0) for i, w in enumerate(words)], target)
        e.method = request.explain_method or "rollout"
        return [e]

    def Answer(self, request: Any, context: Any) -> pb.AnswerResponse:
        explanations = self._explain(request, request.context, "answer 0 over context")
        answer = pb.Span(text=request.context.split()[-1], score=0.9)
        return pb.AnswerResponse(answers=[answer], model="fake", explanations=explanations)

    def Summarize(self, request: Any, context: Any) -> pb.SummarizeResponse:
        explanations = self._explain(request, request.text, "summary over text")
        return pb.SummarizeResponse(summary=request.text[:20], explanations=explanations)

    def Embed(self, request: Any, context: Any) -> pb.EmbedResponse:
        explanations = [
            e for i, t in enumerate(request.texts) for e in self._explain(request, t, f"text {i}")
        ]
        embeddings = [pb.Embedding(values=[0.5, 0.5]) for _ in request.texts]
        return pb.EmbedResponse(embeddings=embeddings, dimensions=2, explanations=explanations)


@pytest.fixture(scope="module")
def fake_server() -> Iterator[tuple[str, FakeTextInference]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = FakeTextInference()
    pb_grpc.add_TextInferenceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", servicer
    server.stop(None)


@pytest.fixture
def context_file(tmp_path: Path) -> Path:
    path = tmp_path / "context.txt"
    path.write_text("Tokyo 東京 is the capital of Japan", encoding="utf-8")
    return path


def test_answer_with_html_explains_prints_and_writes_the_page(
    fake_server: tuple[str, FakeTextInference],
    context_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    target, servicer = fake_server
    out = tmp_path / "page.html"
    args = ["answer", "--target", target, "--context", str(context_file), "--html", str(out)]
    assert main([*args, "what is the capital?"]) == 0
    request = servicer.requests[-1]
    assert request.explain and request.explain_method == "" and request.explain_layer == 0
    printed = capsys.readouterr()
    assert printed.out.startswith("[0.900]")  # the usual output first
    assert "\nanswer 1: 'Japan' (score 0.900)\n" in printed.out
    assert "[Japan 0.25]" in printed.out and "\x1b" not in printed.out  # not a terminal
    assert "method rollout · target answer 0 over context · top: Japan 0.250" in printed.out
    assert printed.err == f"wrote 1 explanation(s) to {out}\n"
    spans = spans_of(out.read_text(encoding="utf-8")).spans
    assert [s["text"] for s in spans] == ["Tokyo", "東京", "is", "the", "capital", "of", "Japan"]


def test_embed_and_summarize_explain_each_text(
    fake_server: tuple[str, FakeTextInference],
    context_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    target, servicer = fake_server
    assert main(["embed", "--target", target, "one two", "three", "--explain-layer", "2"]) == 0
    request = servicer.requests[-1]
    assert (request.explain, request.explain_method, request.explain_layer) == (
        True,
        "attention",
        2,
    )
    out = capsys.readouterr().out
    assert "\ntext 1\n[one 0.33] [two 0.67]\n" in out and "\ntext 2\n[three 1.00]\n" in out
    assert main(["summarize", "--target", target, str(context_file), "--explain"]) == 0
    assert "\nsummary: Tokyo 東京 is the capi\n" in capsys.readouterr().out


def test_json_output_carries_the_explanations(
    fake_server: tuple[str, FakeTextInference],
    context_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    target, _ = fake_server
    args = ["answer", "--target", target, "--context", str(context_file), "--json", "--explain"]
    assert main([*args, "q"]) == 0
    body = json.loads(capsys.readouterr().out)  # nothing but the JSON on stdout
    (e,) = body["explanations"]
    assert e["target"] == "answer 0 over context" and e["tokens"][1]["token"] == "東京"


def test_without_explain_nothing_is_asked_or_shown(
    fake_server: tuple[str, FakeTextInference],
    context_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    target, servicer = fake_server
    assert main(["answer", "--target", target, "--context", str(context_file), "q"]) == 0
    assert not servicer.requests[-1].explain
    assert capsys.readouterr().out == "[0.900] (0-0) Japan\n"


@pytest.mark.parametrize(
    "html_path, says",
    [("missing-folder/page.html", "No such file or directory"), (".", "Is a directory")],
)
def test_an_unwritable_html_path_is_one_line_and_exit_2_before_any_call(
    context_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    html_path: str,
    says: str,
) -> None:
    # Nothing listens at the target: the path is checked before the call is made.
    path = str(tmp_path / html_path)
    args = ["answer", "--target", "127.0.0.1:9", "--context", str(context_file), "--html", path]
    assert main([*args, "q"]) == 2
    err = capsys.readouterr().err
    assert err == f"attnserve answer: --html {path}: {says}\n"


def test_html_and_method_imply_explain_and_layer_needs_attention(
    context_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from service.cli import build_parser
    from service.client import _REQUESTS

    def request(*flags: str) -> Any:
        args = build_parser().parse_args(["answer", "--context", str(context_file), *flags, "q"])
        return _REQUESTS["answer"](args)

    assert not request().explain
    assert request("--html", "x.html").explain
    assert request("--explain-method", "attention").explain_method == "attention"
    assert request("--explain").explain_method == ""
    args = ["answer", "--context", str(context_file), "--explain-method", "rollout"]
    assert main([*args, "--explain-layer", "3", "q"]) == 2
    assert "use --explain-method attention" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main([*args[:-2], "--explain-method", "gradients", "q"])
    assert exit_.value.code == 2


def write_docs_screenshot(path: Path = ROOT / "docs" / "explain-page.png") -> None:
    """The README's picture: the example page at 1000×320, as `--html` writes it."""
    binary = chromium_binary()
    if binary is None:
        raise SystemExit("needs chromium (apt-get install chromium)")
    page = html_page(example(), heading=f"What the model attended to: {QUESTION}")
    screenshot(binary, page, path, height=320)


if __name__ == "__main__":
    write_docs_screenshot()
