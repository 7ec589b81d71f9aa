"""What share of its int8 draft's tokens a speculative run took, from its metrics."""

from __future__ import annotations

from service.metrics import Metrics


def draft_share(metrics: Metrics, model: str) -> dict[str, float]:
    """{"draft_accepted_share": accepted / drafted}, or {} when nothing was drafted."""
    counts = {
        outcome: metrics.registry.get_sample_value(
            "attnserve_draft_tokens_total", {"model": model, "outcome": outcome}
        )
        or 0.0
        for outcome in ("accepted", "rejected")
    }
    drafted = counts["accepted"] + counts["rejected"]
    return {"draft_accepted_share": counts["accepted"] / drafted} if drafted else {}
