"""The decision stage's rules: prompting, RAG or fine-tuning, and which method, with every rule's evidence.

The rules follow the guidance this product is built on: start with prompting; under 10 examples there is
nothing to learn from, under 100 use them as few-shot examples; use RAG when retrieval measurably beats
prompting on knowledge questions (on the same validation examples, beyond noise and by decision.rag_margin);
stop when a prompt already meets the target; otherwise fine-tune, with the method picked by the memory it needs:
full fine-tuning only for quality with about 10k examples or more, LoRA when the model fits, QLoRA when only
4-bit fits, adapters when several tasks share one base.
"""

from __future__ import annotations

from typing import Any

from tunesmith.config.schema import DecisionConfig
from tunesmith.decision.baselines import Baseline, paired_over
from tunesmith.decision.memory import MemoryEstimate
from tunesmith.errors import NotEnoughMemory
from tunesmith.records import Decision, DecisionRecord, Rule
from tunesmith.training.distributed.strategies import unsupported

STOP_TEMPLATE = {"prompting": "zero_shot", "few_shot_prompting": "few_shot"}


def _best(baselines: list[Baseline], prefix: tuple[str, ...]) -> Baseline | None:
    chosen = [b for b in baselines if b.name.startswith(prefix)]
    return max(chosen, key=lambda b: b.score) if chosen else None


def rag_over_prompting(rag: Baseline | None, prompting: Baseline | None, task_type: str) -> tuple[bool, str]:
    """Whether retrieval beats prompting beyond noise on the same validation examples, and the evidence; the size
    of the lead is held against decision.rag_margin by the caller."""
    if rag is None or prompting is None:
        return False, "no knowledge corpus configured: RAG not measured"
    change, shown = paired_over(rag, prompting, task_type)
    evidence = (f"best RAG ({rag.name}) {rag.score:.3f} vs best prompting ({prompting.name}) {prompting.score:.3f}: "
                f"{shown}, {change.method}")  # fmt: skip
    if change.direction > 0:
        return True, evidence
    return False, f"{evidence}: the two cannot be told apart"


def choose_approach(
    n_train: int, config: DecisionConfig, baselines: list[Baseline], task_type: str
) -> tuple[Decision, Baseline | None, list[Rule]]:
    """The first rule that fires decides; later rules are still recorded, as not fired."""
    prompting = _best(baselines, ("zero_shot", "few_shot"))
    rag = _best(baselines, ("rag_",))
    best = _best(baselines, ("",))
    gain = rag.score - prompting.score if rag and prompting else None
    beats, rag_evidence = rag_over_prompting(rag, prompting, task_type)
    rules = [
        Rule(
            "too_few_examples_for_anything_but_prompting",
            n_train < config.min_examples_prompting,
            f"{n_train} training examples; below {config.min_examples_prompting} there is nothing to learn from: "
            "write a prompt",
        ),
        Rule(
            "too_few_examples_to_fine_tune",
            config.min_examples_prompting <= n_train < config.min_examples_finetune,
            f"{n_train} training examples; below {config.min_examples_finetune}, use them as few-shot examples "
            "instead of fine-tuning",
        ),
        Rule(
            "rag_beats_prompting",
            beats and gain is not None and gain >= config.rag_margin,
            rag_evidence + (f"; margin {config.rag_margin}" if gain is not None else ""),
        ),
        Rule(
            "prompting_meets_target",
            config.target is not None and best is not None and best.score >= config.target,
            f"best baseline {best.name} scores {best.score:.3f} {best.metric} against target {config.target}"
            if best is not None and config.target is not None
            else "no target set (decision.target)"
            if best
            else "no baselines measured",
        ),
    ]
    if rules[0].fired:
        return "prompting", prompting, rules + [Rule("fine_tune", False, "not reached")]
    if rules[1].fired:
        few_shot = next((b for b in baselines if b.name == "few_shot"), prompting)
        return "few_shot_prompting", few_shot, rules + [Rule("fine_tune", False, "not reached")]
    if rules[2].fired:
        return "rag", rag, rules + [Rule("fine_tune", False, "not reached")]
    if rules[3].fired:
        kind: Decision = (
            "rag" if best.name.startswith("rag_") else "few_shot_prompting" if best.name == "few_shot" else "prompting"
        )
        return kind, best, rules + [Rule("fine_tune", False, "not reached")]
    evidence = f"{n_train} training examples" + (
        f"; best baseline {best.name} {best.score:.3f} {best.metric}"
        + (f" is below target {config.target}" if config.target else "")
        if best
        else ""
    )
    return "finetune", None, rules + [Rule("fine_tune", True, evidence)]


def choose_method(
    n_train: int, config: DecisionConfig, estimates: dict[str, MemoryEstimate], available_gb: float
) -> tuple[str | None, list[Rule]]:
    """The method by memory, data size and priority; None when not even 4-bit QLoRA fits."""
    budget = available_gb * config.memory_headroom

    def fits(method: str) -> bool:
        e = estimates.get(method)
        return e is not None and e.total_gb <= budget and not unsupported(method, e.plan.get("strategy", "none"))

    def need(method: str) -> str:
        if method not in estimates:
            return f"{method} not estimated"
        e, plan = estimates[method], estimates[method].plan
        how = (
            f" at micro-batch {plan['batch_size']} x {plan['gradient_accumulation_steps']} accumulation steps"
            + (" with activation checkpointing" if plan["gradient_checkpointing"] else "")
            if plan
            else ""
        )
        return f"{method} needs {e.total_gb:.2f} GB{e.where()}{how} of {budget:.2f} GB usable"

    rules = [
        Rule(
            "several_tasks_share_one_base",
            config.multi_task and fits("adapter"),
            f"decision.multi_task={config.multi_task}; {need('adapter')}",
        ),
        Rule(
            "quality_priority_with_enough_data_and_memory",
            config.priority == "quality" and n_train >= config.full_finetune_min_examples and fits("full"),
            f"priority {config.priority}; {n_train} examples (full fine-tuning wants "
            f"{config.full_finetune_min_examples}+); {need('full')}",
        ),
        Rule("lora_fits", fits("lora"), need("lora")),
        Rule("only_4bit_fits", not fits("lora") and fits("qlora"), need("qlora")),
    ]
    for rule, method in zip(rules, ("adapter", "full", "lora", "qlora"), strict=True):
        if rule.fired:
            return method, rules
    return None, rules + [Rule("nothing_fits_in_memory", True, need("qlora"))]


def decide(
    n_train: int,
    config: DecisionConfig,
    baselines: list[Baseline],
    estimates: dict[str, MemoryEstimate],
    available_gb: float,
    memory_source: str,
    requested_method: str = "auto",
    fallback_template: dict[str, Any] | None = None,
    *,
    task_type: str,
) -> DecisionRecord:
    """The full decision: approach, then method; config overrides win but the record keeps the stage's own choice."""
    approach, winner, rules = choose_approach(n_train, config, baselines, task_type)
    method = None
    if approach == "finetune":
        method, method_rules = choose_method(n_train, config, estimates, available_gb)
        rules += method_rules
        if method is None:
            approach, winner = "prompting", _best(baselines, ("zero_shot", "few_shot"))
    record = DecisionRecord(
        decision=approach,
        method=method,
        rules=rules,
        baselines=[b.to_json() for b in baselines],
        memory={name: e.to_json() for name, e in estimates.items()},
        memory_available_gb=available_gb,
        memory_source=memory_source,
    )
    forced_decision = config.force or approach
    forced_method = (
        (requested_method if requested_method != "auto" else method or "lora")
        if forced_decision == "finetune"
        else None
    )
    if (forced_decision, forced_method) != (approach, method):
        record.overridden = True
        record.would_have_chosen = {"decision": approach, "method": method}
        record.decision, record.method = forced_decision, forced_method
        if forced_decision != "finetune":
            winner = next((b for b in baselines if b.name == STOP_TEMPLATE.get(forced_decision, "")), None) or (
                _best(baselines, ("rag_",)) if forced_decision == "rag" else winner
            )
    best = _best(baselines, ("",))
    record.best_template = best.template if best else fallback_template
    record.best_baseline = best.name if best else None
    if record.stop:
        record.winning_template = winner.template if winner else fallback_template
        record.winning_baseline = winner.name if winner else None
    return record


def require_fit(record: DecisionRecord, config: DecisionConfig) -> None:
    """Stop before training when the method to train does not fit the memory available (by its estimate).

    Only a method the config forces can get here: the stage's own choice is always one that fits."""
    estimate = record.memory.get(record.method or "")
    if record.stop or estimate is None or record.memory_available_gb is None:
        return
    budget = record.memory_available_gb * config.memory_headroom
    if estimate["total_gb"] <= budget:
        return
    components = ("weights_gb", "gradients_gb", "optimizer_gb", "activations_gb", "overhead_gb")
    parts = ", ".join(f"{k.removesuffix('_gb')} {estimate[k]:.3g}" for k in components if estimate[k])
    fitting = [m for m, e in record.memory.items() if e["total_gb"] <= budget]
    raise NotEnoughMemory(
        f"training with {record.method} needs an estimated {estimate['total_gb']:.3g} GB ({parts}), but "
        f"{budget:.3g} GB are usable ({config.memory_headroom:.0%} of {record.memory_available_gb:.3g} GB, "
        f"{record.memory_source})",
        "training.method",
        (f"use a method that fits ({', '.join(fitting)}), " if fitting else "")
        + "lower training.batch_size or training.max_seq_length, turn on training.gradient_checkpointing, or set "
        "decision.memory_gb if the machine has more memory than detected",
    )
