"""Retraining against forgetting: which changes each attempt makes, and which attempt the promotion gate gets.

The reference texts' mitigations, applied one on top of the other (attempt k keeps attempts 1..k-1's changes), so
that each attempt is at least as cautious as the one before: general-domain replay mixed into training, a lower
learning rate, fewer steps. Replay comes first: it is the reference texts' first advice, and a lower learning rate
is not the cure it looks like (the demo at a quarter of the default rate forgot more on 2,199 general questions,
not less). The order is forgetting.mitigation.order, so that what works on a team's own data can lead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tunesmith.records import EvaluationResult, ForgettingReport, TrainedModel

REPLAY, LEARNING_RATE, FEWER_STEPS = "replay", "learning_rate", "fewer_steps"


@dataclass(frozen=True)
class Mitigation:
    """One attempt's changes: `data` as --set overrides of the config (curation runs again), `training` as
    settings the training plan derives from the decision's plan."""

    name: str
    why: str
    data: tuple[str, ...] = ()
    training: dict[str, Any] = field(default_factory=dict)


def plan_attempts(
    order: list[str], max_attempts: int, replay_fraction: float, learning_rate: float, steps: int
) -> list[Mitigation]:
    """Up to `max_attempts` attempts, each adding the next mitigation of `order` to the ones before it.

    `replay_fraction`, `learning_rate` and `steps` are what the first training used."""
    attempts: list[Mitigation] = []
    data: tuple[str, ...] = ()
    training: dict[str, Any] = {}
    names: list[str] = []
    for name in order:
        if len(attempts) == max_attempts:
            break
        if name == REPLAY:
            fraction = 0.1 if replay_fraction < 0.1 else min(0.2, 2 * replay_fraction)
            if fraction <= replay_fraction:
                continue  # already at the largest share the reference texts suggest
            data = (f"data.replay.fraction={fraction:g}",)
            names.append(f"replay {fraction:.0%}")
        elif name == LEARNING_RATE:
            training = {**training, "learning_rate": learning_rate / 2}
            names.append(f"learning rate {learning_rate / 2:.2g}")
        elif name == FEWER_STEPS:
            if steps < 2:
                continue
            training = {**training, "max_steps": max(1, steps // 2)}
            names.append(f"{max(1, steps // 2)} steps")
        attempts.append(Mitigation(name, " + ".join(names), data, dict(training)))
    return attempts


@dataclass
class Attempt:
    """One training of the run and what the gates measured on it; number 0 is the training as configured."""

    number: int
    why: str
    trained: TrainedModel
    evaluation: EvaluationResult
    forgetting: ForgettingReport
    config: Any = None  # the RunConfig and CuratedData it was trained with
    data: Any = None

    def passes_forgetting(self, inconclusive: str) -> bool:
        verdict = self.forgetting.verdict
        return verdict == "no forgetting" or (verdict == "inconclusive" and inconclusive == "promote")

    def row(self) -> dict[str, Any]:
        """The trade-off table's row: task score and its change over the base model, forgetting and its change."""
        e, f = self.evaluation, self.forgetting
        return {
            "attempt": self.number,
            "changes": self.why,
            "steps": int(self.trained.metrics.get("steps", 0)),
            e.metric: e.finetuned[e.metric],
            "task_change": e.change,
            "forgetting": f.verdict,
            "forgetting_change": f.pooled,
            "model_version": f"{self.trained.registered.get('name', '')}/{self.trained.registered.get('version', '')}",
        }


def choose_attempt(attempts: list[Attempt], inconclusive: str) -> Attempt:
    """The attempt with the best task score among those whose forgetting verdict allows promotion; the first
    (as configured) when none does, so that the gate reports what was asked for."""
    passing = [a for a in attempts if a.passes_forgetting(inconclusive)]
    if not passing:
        return attempts[0]
    return max(passing, key=lambda a: (a.evaluation.finetuned[a.evaluation.metric], -a.number))


def needs_mitigation(report: ForgettingReport | None) -> bool:
    return report is not None and report.forgetting
