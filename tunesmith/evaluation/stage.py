"""The evaluation stage as one plain function: base (best prompt) and fine-tuned model on the test split."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tunesmith.config import RunConfig
from tunesmith.console import progress
from tunesmith.curation.records import read_examples, write_jsonl
from tunesmith.evaluation.evaluate import prediction_rows
from tunesmith.evaluation.judge import EndpointJudge, LocalJudge, summarize
from tunesmith.evaluation.metrics import confusion, paired_change
from tunesmith.evaluation.next_data import (
    Suggestion,
    classification_suggestions,
    generation_suggestions,
    write_next_data,
)
from tunesmith.evaluation.plots import confusion_png
from tunesmith.evaluation.preference import margin_summary, reward_margins, sample_rows
from tunesmith.evaluation.test_set import load_test_set, score_test_set
from tunesmith.models.load import load_model
from tunesmith.prompts import PromptTemplate
from tunesmith.records import CuratedData, DecisionRecord, EvaluationResult, PreparedModel, Scored, TrainedModel
from tunesmith.statistics.paired import paired_scores
from tunesmith.training.inference import load_trained
from tunesmith.training.objectives import OBJECTIVES


def _retriever(config: RunConfig, template: PromptTemplate):
    if not template.retriever:
        return None
    from tunesmith.decision.stage import retrievers_for

    return next((r for r in retrievers_for(config.decision.rag) if r.name == template.retriever), None)


def run_evaluation(
    config: RunConfig,
    data: CuratedData,
    model: PreparedModel,
    trained: TrainedModel,
    decision: DecisionRecord,
    out_dir: Path,
) -> EvaluationResult:
    settings = config.evaluation
    tests = load_test_set(config, data)
    examples, kind = tests.examples, tests.kind
    best = PromptTemplate.from_json(decision.best_template) if decision.best_template else None
    batch = settings.batch_size

    pairs = kind == "preference"
    replies: dict[str, list[str]] = {}
    base_model, tokenizer = load_model(model.path, model.precision, model.trust_remote_code)
    with progress.bar("base model", len(examples), "examples"):
        template = best or PromptTemplate(tests.untrained_system)
        base = score_test_set(base_model, tokenizer, tests, batch, template, _retriever(config, template))
    if pairs:
        # DPO's reference is the base model asked as the trained one is (its best prompt may differ).
        reference = _reference_scores(base_model, tokenizer, tests, base, template)
        replies["base"] = _replies(base_model, tokenizer, tests, config, template)
    del base_model
    tuned_model, tokenizer = load_trained(
        model.path, trained.method, trained.output_dir, model.precision, model.trust_remote_code
    )
    with progress.bar("fine-tuned model", len(examples), "examples"):
        tuned = score_test_set(tuned_model, tokenizer, tests, batch)
    if pairs:
        replies["finetuned"] = _replies(tuned_model, tokenizer, tests, config, PromptTemplate(tests.system))
    del tuned_model

    if pairs:
        # The trained objective's beta; a supervised model of pairs is read with DPO's default.
        beta = trained.hyperparameters.get("beta") or OBJECTIVES["dpo"].settings(config.training.preference)["beta"]
        margins = reward_margins(_pair_scores(tuned), reference, beta)
        rows = sample_rows(examples, base, tuned, margins, replies)
        tuned.metrics |= margin_summary(margins)
    else:
        rows = prediction_rows(examples, base, tuned)
    artifacts = [str(write_jsonl(rows, out_dir / "test_predictions.jsonl"))]
    if kind == "classification":
        artifacts += _confusion_pngs(examples, base, tuned, data.labels, out_dir)
    suggestions = _next_data(kind, examples, tuned, data)
    if suggestions is not None:
        artifacts += [str(path) for path in write_next_data(suggestions, out_dir, kind)]
    change = paired_change(kind, base.per_example, tuned.per_example)
    result = EvaluationResult(kind, len(examples), base.metrics, tuned.metrics, decision.best_baseline or "zero_shot",
                              artifacts[0], artifacts, None, {"base": base.per_example, "finetuned": tuned.per_example},
                              change.to_json(), [s.sentence() for s in suggestions or []])  # fmt: skip
    if settings.judge.enabled:
        if pairs:  # the judge grades the replies each model generated, not which reply of the pair it prefers
            n = len(replies["base"])
            examples, base, tuned = examples[:n], Scored({}, replies["base"]), Scored({}, replies["finetuned"])
        result.judge = _judge(config, model, examples, base, tuned, out_dir)
        result.artifacts.append(str(out_dir / "judge.jsonl"))
    return result


def _next_data(kind: str, examples, tuned: Scored, data: CuratedData) -> list[Suggestion] | None:
    """The fine-tuned model's failures ranked into what to collect next (single labels, or generated text grouped
    by category or prompt cluster); None for the kinds it does not cover."""
    if kind not in ("classification", "generation", "json"):
        return None
    train = [e for e in read_examples(Path(data.train_path)) if e.origin == "task"]
    if kind == "classification":
        counts = Counter(e.label for e in train if e.label is not None)
        suggestions = classification_suggestions(examples, tuned.predictions, dict(counts))
    else:
        counts = Counter(e.category for e in train if e.category)
        suggestions = generation_suggestions(examples, tuned.per_example, tuned.predictions, dict(counts))
    return suggestions


def _confusion_pngs(examples, base: Scored, tuned: Scored, labels: list[str], out_dir: Path) -> list[str]:
    paths = []
    for name, scored in (("base", base), ("finetuned", tuned)):
        matrix = confusion([e.answer for e in examples], scored.predictions, labels)
        paths.append(str(confusion_png(matrix, labels, f"{name} model", out_dir / f"confusion_{name}.png")))
    return paths


def _pair_scores(scored: Scored):
    import numpy as np

    return np.column_stack([scored.log_likelihoods["chosen"], scored.log_likelihoods["rejected"]])


def _reference_scores(base_model, tokenizer, tests, base: Scored, template: PromptTemplate):
    """The base model's pair scores under the trained prompt: its best prompt's when that is the same prompt."""
    from tunesmith.evaluation.preference import pair_logprobs

    if template.shots or template.retriever or template.system != tests.system:
        with progress.bar("reference model", len(tests.examples), "examples"):
            return pair_logprobs(base_model, tokenizer, tests.examples, tests.system)
    return _pair_scores(base)


def _replies(model, tokenizer, tests, config: RunConfig, template: PromptTemplate) -> list[str]:
    """Generated replies to the first test pairs' prompts: the samples the report shows and the judge grades."""
    from tunesmith.evaluation.scoring import generate

    settings = config.evaluation
    n = max(settings.samples_in_report, settings.judge.max_examples if settings.judge.enabled else 0)
    chosen = tests.examples[:n]
    if not chosen:
        return []
    longest = max(len(tokenizer(e.answer, add_special_tokens=False)["input_ids"]) for e in chosen)
    with progress.bar("sample replies", len(chosen), "examples"):
        return generate(model, tokenizer, [template.messages(e) for e in chosen], max_new_tokens=min(longest + 8, 256),
                        batch_size=settings.batch_size)  # fmt: skip


def _judge(config: RunConfig, model: PreparedModel, examples, base: Scored, tuned: Scored, out_dir: Path) -> dict:
    settings = config.evaluation.judge
    if settings.endpoint:
        judge = EndpointJudge(settings.endpoint, settings.endpoint_model, settings.api_key_env, settings.timeout_s)
    else:
        from tunesmith.models.resolve import resolve_model

        judge = LocalJudge(resolve_model(settings.model, config.model_cache_dir), model.precision)
    chosen = list(range(min(settings.max_examples, len(examples))))
    verdicts = {}
    for name, scored in (("base", base), ("finetuned", tuned)):
        items = [(examples[i].prompt_text, examples[i].answer, scored.predictions[i]) for i in chosen]
        verdicts[name] = judge.judge(settings.rubric, items)
    rows = [
        {"input": examples[i].prompt_text, "reference": examples[i].answer, "base": base.predictions[i],
         "base_score": verdicts["base"][k].score, "base_rationale": verdicts["base"][k].rationale,
         "finetuned": tuned.predictions[i], "finetuned_score": verdicts["finetuned"][k].score,
         "finetuned_rationale": verdicts["finetuned"][k].rationale}
        for k, i in enumerate(chosen)
    ]  # fmt: skip
    write_jsonl(rows, out_dir / "judge.jsonl")
    result = {"base": summarize(verdicts["base"]), "finetuned": summarize(verdicts["finetuned"]), "rows": rows}
    # The judge's grades of the same examples, paired (a bootstrap: grades are a scale, not right or wrong)
    graded = [(r["base_score"], r["finetuned_score"]) for r in rows
              if r["base_score"] is not None and r["finetuned_score"] is not None]  # fmt: skip
    if len(graded) >= 2:
        result["change"] = paired_scores([b for b, _ in graded], [t for _, t in graded]).to_json()
        result["win_rate"] = win_rate(graded)
    return result


def win_rate(graded: list[tuple[float, float]]) -> dict[str, float]:
    """How often the judge graded the fine-tuned reply above the base model's (a tie counts half), and the sign
    test of wins against losses (ties carry no direction)."""
    from scipy.stats import binomtest

    wins = sum(t > b for b, t in graded)
    losses = sum(t < b for b, t in graded)
    ties = len(graded) - wins - losses
    p = binomtest(wins, wins + losses).pvalue if wins + losses else 1.0
    return {"win_rate": (wins + ties / 2) / len(graded), "wins": wins, "ties": ties, "losses": losses,
            "sign_test_p": float(p), "n": len(graded)}  # fmt: skip
