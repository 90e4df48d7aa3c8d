"""Where a turn's time goes, read from the call log: the benchmarks measure nothing here.

The engine times each stage where the work happens and carries it on the call's events
(docs/metrics.md; the same values ``ivr_turn_stage_seconds{stage}`` observes):
``speech`` has ``endpoint_s`` (the recogniser's wait after the last loud audio, caller
audio time) and ``transcript_s`` (its final decoding), ``turn`` has ``nlu_s``,
``queue_wait_s`` + ``lock_wait_s`` (the dialogue thread and the conversation's lock) and
``dialogue_s``, and the answer's first ``prompt`` has ``render_s`` (synthesis, or the
cache). ``server`` is the time between the ``speech`` event and that ``prompt`` event:
everything the server did between the end of the utterance and handing the first prompt
audio to the transport. The histograms give only bucket bounds; the events give each
turn's value, hence exact percentiles.
"""

from __future__ import annotations

from ivr.core.events import CallEvent, PromptPlayed, TranscriptFinal, TurnTaken

STAGES = ("endpoint", "transcript", "nlu", "dialogue_queue", "dialogue", "prompt", "server")


def turn_stages(events: list[CallEvent]) -> list[dict[str, float]]:
    """Each spoken turn of one call (its events in order): seconds per stage."""
    turns: list[dict[str, float]] = []
    current: dict[str, float] | None = None
    heard_at = 0.0
    for event in events:
        match event:
            case TranscriptFinal() if event.text or event.raw:
                current = {"endpoint": event.endpoint_s or 0.0,
                           "transcript": event.transcript_s or 0.0}
                heard_at = event.at
            case TurnTaken() if current is not None and "nlu" not in current:
                current["nlu"] = event.nlu_s or 0.0
                current["dialogue_queue"] = (event.queue_wait_s or 0.0) + (
                    event.lock_wait_s or 0.0)
                current["dialogue"] = event.dialogue_s or 0.0
            case PromptPlayed() if current is not None and "nlu" in current:
                current["prompt"] = event.render_s or 0.0
                current["server"] = max(0.0, event.at - heard_at)
                turns.append(current)
                current = None
    return turns


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def stage_table(turns: list[dict[str, float]]) -> list[str]:
    """p50 / p95 / p99 of each stage in ms, one line each."""
    lines = [f"    {'stage':<15} {'p50':>8} {'p95':>8} {'p99':>8}   ({len(turns)} turns)"]
    for stage in STAGES:
        values = [t[stage] * 1000 for t in turns if stage in t]
        lines.append(f"    {stage:<15} {percentile(values, 0.5):>8.1f} "
                     f"{percentile(values, 0.95):>8.1f} {percentile(values, 0.99):>8.1f}")
    return lines
