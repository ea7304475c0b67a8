"""Preference pairs scored by a model: the log-likelihood of each reply after its prompt, whether the chosen one is
the more likely (preference accuracy), and DPO's implicit reward margin against a reference model's scores."""

from __future__ import annotations

import numpy as np
import torch

from tunesmith.console import progress
from tunesmith.evaluation.label_tree import reply_tokens
from tunesmith.evaluation.scoring import _chat_ids, _continuation_logprobs, token_batches
from tunesmith.forgetting.shared_prefix import score_choices, shares_prefixes
from tunesmith.prompts import prompt_messages
from tunesmith.records import Example, Scored


@torch.no_grad()
def pair_logprobs(
    model, tokenizer, examples: list[Example], system: str = "", prompts: list[list[dict[str, str]]] | None = None,
    batch_size: int = 8,
) -> np.ndarray:  # fmt: skip
    """(n, 2): the summed log-likelihood of the chosen and of the rejected reply, each as the assistant's whole
    reply (end of turn included) to the pair's prompt, as DPO scores them; `prompts` replaces the zero-shot
    prompt (system + the pair's conversation) with one per example (a few-shot prompt, say).

    Each prompt is read once for both replies (the forgetting suite's shared-prefix scorer), pairs of similar
    prompt length in a batch: conversations are most of a pair's tokens (HH-RLHF's test pairs: about 3/4).
    A batch holds at most `batch_size` pairs and the scoring token budget (see `_batches`)."""
    pairs = [_pair_tokens(tokenizer, prompts[i] if prompts is not None else prompt_messages(e, system), e)
             for i, e in enumerate(examples)]  # fmt: skip
    scores = np.empty((len(examples), 2))
    if not shares_prefixes(model):  # prompt tuning's virtual tokens come with every forward call
        for i, (prompt_ids, replies) in enumerate(pairs):
            scores[i] = _continuation_logprobs(model, prompt_ids, replies, tokenizer.pad_token_id)
            progress.advance()
        return scores
    for batch in _batches(pairs, batch_size):
        answers = score_choices(model, model.device, [pairs[i][0] for i in batch], [pairs[i][1] for i in batch])
        for j, i in enumerate(batch):
            scores[i] = [answers[2 * j][0], answers[2 * j + 1][0]]
            progress.advance()
    return scores


# The scorer keeps every reply's logits over the whole vocabulary until it has read them all: 8 HH-RLHF pairs with
# 900-token replies held 1.6 GB of them, on top of the forward pass's own, and a run's evaluation went out of
# memory. The scoring token budget bounds both whatever the lengths.
def _batches(pairs: list[tuple[list[int], list[list[int]]]], batch_size: int) -> list[list[int]]:
    """Pair indices in batches, longest prompt first, each within `batch_size` pairs and the scoring token budget
    (pairs x (longest prompt + both replies at the longest reply's length))."""

    def width(batch: list[int]) -> int:
        return max(len(pairs[j][0]) for j in batch) + 2 * max(len(r) for j in batch for r in pairs[j][1])

    return token_batches([len(prompt) for prompt, _ in pairs], batch_size, width=width)


def _pair_tokens(tokenizer, messages: list[dict[str, str]], example: Example) -> tuple[list[int], list[list[int]]]:
    """The prompt's tokens (up to the assistant's turn) and the chosen and rejected replies' tokens after it."""
    prompt_ids = _chat_ids(tokenizer, messages, generation_prompt=True)
    replies = [
        reply_tokens(tokenizer, prompt_ids,
                     _chat_ids(tokenizer, [*messages, {"role": "assistant", "content": r}], generation_prompt=False))
        for r in (example.answer, example.rejected or "")
    ]  # fmt: skip
    return prompt_ids, replies


def preference_accuracy(scores: np.ndarray) -> list[float]:
    """Per pair: 1 when the model finds the chosen reply more likely than the rejected one (a tie counts 0)."""
    return [float(chosen > rejected) for chosen, rejected in scores]


def reward_margins(scores: np.ndarray, reference: np.ndarray, beta: float) -> list[float]:
    """DPO's implicit reward margin per pair: beta x ((chosen - reference chosen) - (rejected - reference rejected))
    in log-likelihood; 0 for the reference model itself."""
    moved = np.asarray(scores) - np.asarray(reference)
    return [float(beta * (c - r)) for c, r in moved]


def score_preferences(model, tokenizer, prompts: list[list[dict[str, str]]], examples: list[Example]) -> Scored:
    """Preference accuracy (the primary metric, right or wrong per pair) and the mean log-likelihood margin of the
    chosen reply over the rejected one; each example's prediction is the reply the model prefers."""
    scores = pair_logprobs(model, tokenizer, examples, prompts=prompts)
    right = preference_accuracy(scores)
    metrics = {
        "preference_accuracy": float(np.mean(right)) if right else float("nan"),
        "logp_margin": float(np.mean(scores[:, 0] - scores[:, 1])) if right else float("nan"),
    }
    return Scored(metrics, ["chosen" if r else "rejected" for r in right], right,
                  {"chosen": scores[:, 0].tolist(), "rejected": scores[:, 1].tolist()})  # fmt: skip


def margin_summary(margins: list[float]) -> dict[str, float]:
    """The trained model's implicit reward margins over the reference on the test pairs: their mean with its
    interval (bootstrap of the mean) and the share above zero (DPO's reward accuracy) with Wilson's interval."""
    from tunesmith.evaluation.metrics import mean_interval, score_interval

    positive = [float(m > 0) for m in margins]
    mean_low, mean_high = mean_interval(margins)
    share_low, share_high = score_interval("preference", positive)
    return {
        "reward_margin": float(np.mean(margins)), "reward_margin_low": mean_low, "reward_margin_high": mean_high,
        "reward_accuracy": float(np.mean(positive)), "reward_accuracy_low": share_low,
        "reward_accuracy_high": share_high, "n": float(len(margins)),
    }  # fmt: skip


def sample_rows(
    examples: list[Example], base: Scored, tuned: Scored, margins: list[float], replies: dict[str, list[str]]
) -> list[dict]:
    """The test pairs, worst first (the trained model's reward margin, lowest first), with each model's
    log-likelihood margin and, for the first pairs, the replies each model generates."""
    rows = []
    for i, e in enumerate(examples):
        rows.append({
            "id": e.id, "input": e.prompt_text, "chosen": e.answer, "rejected": e.rejected,
            "base_prefers": base.predictions[i], "finetuned_prefers": tuned.predictions[i],
            "base_logp_margin": base.log_likelihoods["chosen"][i] - base.log_likelihoods["rejected"][i],
            "finetuned_logp_margin": tuned.log_likelihoods["chosen"][i] - tuned.log_likelihoods["rejected"][i],
            "reward_margin": margins[i],
            "base_reply": replies["base"][i] if i < len(replies["base"]) else None,
            "finetuned_reply": replies["finetuned"][i] if i < len(replies["finetuned"]) else None,
        })  # fmt: skip
    return sorted(rows, key=lambda r: r["reward_margin"])
