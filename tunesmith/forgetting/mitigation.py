"""Retraining against forgetting: which changes each attempt makes, and which attempt the promotion gate gets.

The reference texts' mitigations, applied one on top of the other (attempt k keeps attempts 1..k-1's changes), so
that each attempt is at least as cautious as the one before: general-domain replay mixed into training, an L2
penalty toward the base weights, fewer steps, a lower learning rate. The default order is what
benchmarks/forgetting_defaults.py measured on the demo over three seeds: replay and the L2 pull each turned the
LoRA's loss of general knowledge into a gain, and half the learning rate lost more than the derived rate, not
less (as the demo at a quarter of the rate did on 2,199 general questions). The order is
forgetting.mitigation.order, so that what works on a team's own data can lead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tunesmith.records import OLD_TASK, EvaluationResult, ForgettingReport, TrainedModel

REPLAY, LEARNING_RATE, FEWER_STEPS, L2_TO_BASE = "replay", "learning_rate", "fewer_steps", "l2_to_base"
# training.l2_to_base for that step: the pull per step is lr x strength, and over a training whose rates add up to
# sum(lr) a weight pushed the same way every step travels (1 - exp(-x)) / x of its unpulled distance, x = strength x
# sum(lr); x = 1.6 halves it, like halving the learning rate, while pushes that cancel out are held closer still.
# The default cosine schedule (with warm-up) averages about half its peak rate: sum(lr) ~ lr x steps / 2.
HALVING_PULL = 1.6
MEAN_RATE_FRACTION = 0.5


@dataclass(frozen=True)
class Mitigation:
    """One attempt's changes: `data` as --set overrides of the config (curation runs again), `training` as
    settings the training plan derives from the decision's plan."""

    name: str
    why: str
    data: tuple[str, ...] = ()
    training: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Continued:
    """A first training that continued the champion: its retraining.replay_fraction, and what it forgot."""

    champion_replay: float
    old_task_forgot: bool
    general_forgot: bool


# The largest share of the champion's examples in a continued training (retraining.replay_fraction is below 1):
# at 0.8 four of every five examples are ones it has already seen.
MAX_CHAMPION_REPLAY = 0.8


def _replays(general: float, continued: Continued | None) -> list[tuple[str, str]]:
    """(config change, what it does) for the replay attempt: the general share doubled up to the 10-20% the
    reference texts suggest; for a forgotten old task, twice as many of the champion's examples per new one."""
    replays = []
    if continued is None or continued.general_forgot:
        fraction = 0.1 if general < 0.1 else min(0.2, 2 * general)
        if fraction > general:
            replays.append((f"data.replay.fraction={fraction:g}", f"replay {fraction:.0%}"))
    if continued is not None and continued.old_task_forgot:
        share = continued.champion_replay  # replayed per new example: share / (1 - share); doubled below
        more = 0.2 if share < 0.1 else min(MAX_CHAMPION_REPLAY, float(f"{2 * share / (1 + share):.2g}"))
        if more > share:
            replays.append((f"retraining.replay_fraction={more:g}", f"replay {more:.0%} of the champion's examples"))
    return replays


def continued(report: ForgettingReport, champion_replay: float) -> Continued:
    """The first training, continued with retraining.replay_fraction `champion_replay`, and its forgetting report."""
    flagged = report.flagged
    return Continued(champion_replay, OLD_TASK in flagged, any(name != OLD_TASK for name in flagged))


def plan_attempts(
    order: list[str], max_attempts: int, replay_fraction: float, learning_rate: float, steps: int,
    anchored: bool = True, continued: Continued | None = None,
) -> list[Mitigation]:  # fmt: skip
    """Up to `max_attempts` attempts, each adding the next mitigation of `order` to the ones before it.

    `replay_fraction`, `learning_rate` and `steps` are what the first training used; `anchored`: whether its
    method and strategy allow training.l2_to_base (training/anchor.py). `continued`: set when the first training
    continued the champion; replay then replays what was forgotten (the champion's examples when the old task
    dropped, the general data when the general suite did), and the L2 pull is toward the champion it started from."""
    attempts: list[Mitigation] = []
    data: tuple[str, ...] = ()
    training: dict[str, Any] = {}
    names: list[str] = []
    for name in order:
        if len(attempts) == max_attempts:
            break
        if name == REPLAY:
            replays = _replays(replay_fraction, continued)
            if not replays:
                continue  # already at the largest shares
            data = tuple(change for change, _ in replays)
            names.extend(what for _, what in replays)
        elif name == LEARNING_RATE:
            training = {**training, "learning_rate": learning_rate / 2}
            names.append(f"learning rate {learning_rate / 2:.2g}")
        elif name == FEWER_STEPS:
            if steps < 2:
                continue
            training = {**training, "max_steps": max(1, steps // 2)}
            names.append(f"{max(1, steps // 2)} steps")
        elif name == L2_TO_BASE:
            if not anchored or steps < 1 or learning_rate <= 0:
                continue
            rate, length = training.get("learning_rate", learning_rate), training.get("max_steps", steps)
            strength = float(f"{HALVING_PULL / (rate * length * MEAN_RATE_FRACTION):.3g}")
            training = {**training, "l2_to_base": strength}
            names.append(f"L2 toward the {'champion' if continued else 'base'} {strength:g}")
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
    """The attempt with the best task score among those whose forgetting verdict allows promotion; when none does,
    the best of those where no forgetting was found (an inconclusive verdict the gate still blocks: its report
    says what is left to resolve, not a drop the attempts already fixed); the first (as configured) when every
    attempt forgot, so that the gate reports what was asked for."""
    passing = [a for a in attempts if a.passes_forgetting(inconclusive)]
    if not passing:
        passing = [a for a in attempts if not a.forgetting.forgetting]
    if not passing:
        return attempts[0]
    return max(passing, key=lambda a: (a.evaluation.finetuned[a.evaluation.metric], -a.number))


def needs_mitigation(report: ForgettingReport | None) -> bool:
    return report is not None and report.forgetting
