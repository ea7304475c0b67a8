"""Preference pairs scored by a model: the log-likelihood of each reply after its prompt, whether the chosen one is
the more likely (preference accuracy), and DPO's implicit reward margin against a reference model's scores."""

from __future__ import annotations

import numpy as np
import torch

from tunesmith.console import progress
from tunesmith.evaluation.label_tree import reply_tokens
from tunesmith.evaluation.scoring import _chat_ids, _continuation_logprobs
from tunesmith.prompts import prompt_messages
from tunesmith.records import Example


@torch.no_grad()
def pair_logprobs(model, tokenizer, examples: list[Example], system: str) -> np.ndarray:
    """(n, 2): the summed log-likelihood of the chosen and of the rejected reply, each as the assistant's whole
    reply to the pair's prompt (end of turn included), as DPO scores them."""
    scores = np.empty((len(examples), 2))
    for i, example in enumerate(examples):
        messages = prompt_messages(example, system)
        prompt_ids = _chat_ids(tokenizer, messages, generation_prompt=True)
        replies = [
            reply_tokens(tokenizer, prompt_ids, _chat_ids(tokenizer, [*messages, {"role": "assistant", "content": r}],
                                                          generation_prompt=False))
            for r in (example.answer, example.rejected or "")
        ]  # fmt: skip
        scores[i] = _continuation_logprobs(model, prompt_ids, replies, tokenizer.pad_token_id)
        progress.advance()
    return scores


def preference_accuracy(scores: np.ndarray) -> list[float]:
    """Per pair: 1 when the model finds the chosen reply more likely than the rejected one (a tie counts 0)."""
    return [float(chosen > rejected) for chosen, rejected in scores]


def reward_margins(scores: np.ndarray, reference: np.ndarray, beta: float) -> list[float]:
    """DPO's implicit reward margin per pair: beta x ((chosen - reference chosen) - (rejected - reference rejected))
    in log-likelihood; 0 for the reference model itself."""
    moved = scores - reference
    return [float(beta * (c - r)) for c, r in moved]
