"""Answer on a span question-answering model (`*ForQuestionAnswering`): exact spans.

The question and context are cut into windows (span_windows), every window of the request
goes through the model's scheduler as one row (so windows of concurrent requests share
batches), and the start and end logits are decoded into ranked spans (span_decoding).
"""

from __future__ import annotations

from service.batching.scheduler import Scheduler
from service.errors import InvalidArgument
from service.metrics import Metrics
from service.model_format import SpanSettings
from service.tasks.answer import DEFAULT_ANSWERS
from service.tasks.pipelines import ANSWER, AnswerQuery, Answers
from service.tasks.span_decoding import candidates_kept, rank_answers, score_window
from service.tasks.span_windows import QuestionWindows
from service.tasks.spans import check_picks

# Most windows one request may ask for: a 20,000-character context needs about 40 at the
# default stride of a 384-token model; a tiny stride would turn it into thousands of rows.
MAX_WINDOWS = 256


class SpanQA:
    def __init__(
        self,
        model: str,
        windows: QuestionWindows,
        scheduler: Scheduler,
        settings: SpanSettings,
        metrics: Metrics,
    ) -> None:
        self.model = model
        self.scheduler = scheduler
        self.settings = settings
        self._windows = windows
        self._metrics = metrics

    async def answer(self, query: AnswerQuery, deadline: float | None) -> Answers:
        top_k = check_picks(query.top_k, DEFAULT_ANSWERS, "top_k")
        window = self._windows.max_length
        max_answer_length = _option(
            query.max_answer_length, self.settings.max_answer_length, window, "max_answer_length"
        )
        # A stride is an overlap inside one window: it must leave the window room to move.
        doc_stride = _option(query.doc_stride, self.settings.doc_stride, window - 1, "doc_stride")
        windows = self._windows.split(query.question, query.context, doc_stride)
        if len(windows) > MAX_WINDOWS:
            raise InvalidArgument(
                f"the context needs {len(windows)} windows at doc_stride {doc_stride}; the "
                f"limit is {MAX_WINDOWS}: lower doc_stride or send a shorter context"
            )
        outputs = await self.scheduler.submit(
            [w.ids for w in windows], [w.type_ids for w in windows], deadline
        )
        # Counted once computed: refused or dropped requests are not input the model saw.
        tokens = sum(len(w.ids) for w in windows)
        self._metrics.input_tokens.labels(self.model, ANSWER.name).inc(tokens)
        keep = candidates_kept(top_k)
        scored = [
            score_window(start, end, w.candidates, max_answer_length, keep)
            for w, (start, end) in zip(windows, outputs, strict=True)
        ]
        ranked = rank_answers(query.context, windows, scored, top_k, query.allow_no_answer)
        return Answers(
            [span for span, _ in ranked], truncated_sentences=0, windows=[w for _, w in ranked]
        )


def _option(value: int, default: int, limit: int, name: str) -> int:
    """A request option: 0 means the model's default; INVALID_ARGUMENT outside 1..limit."""
    if value == 0:
        return min(default, limit)
    if not 1 <= value <= limit:
        raise InvalidArgument(f"{name} must be between 1 and {limit} for this model; got {value}")
    return value
