"""Model-side primitives for evaluation: label log-likelihoods and batched greedy generation."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from tunesmith.console import progress
from tunesmith.evaluation.label_tree import reply_tokens, score_labels, supports_tree_masks


def _chat_ids(tokenizer, messages: list[dict[str, str]], generation_prompt: bool) -> list[int]:
    encoded = tokenizer.apply_chat_template(
        messages, add_generation_prompt=generation_prompt, tokenize=True, return_dict=True
    )
    return list(encoded["input_ids"])


def uses_virtual_tokens(model) -> bool:
    """Prefix and prompt tuning: PEFT supplies its own key/value prefix or input positions on every forward
    pass, so a caller's KV cache cannot be reused across calls."""
    config = getattr(model, "active_peft_config", None)
    return bool(config is not None and config.is_prompt_learning)


def _continuation_logprobs(model, prompt_ids: list[int], continuations: list[list[int]], pad_id: int) -> list[float]:
    """Whole prompt + continuation sequences in one right-padded batch, no cache."""
    width = len(prompt_ids) + max(len(c) for c in continuations)
    ids = torch.full((len(continuations), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(continuations), width), dtype=torch.long)
    for row, cont in enumerate(continuations):
        ids[row, : len(prompt_ids) + len(cont)] = torch.tensor(prompt_ids + cont)
        mask[row, : len(prompt_ids) + len(cont)] = 1
    logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device)).logits
    logprobs = torch.log_softmax(logits[:, -width:].float(), dim=-1).cpu()  # prompt tuning prepends positions
    start = len(prompt_ids)
    return [
        sum(logprobs[row, start + j - 1, cont[j]].item() for j in range(len(cont)))
        for row, cont in enumerate(continuations)
    ]


def label_replies(
    tokenizer, prompts: list[list[dict[str, str]]], prompt_ids: list[list[int]], labels: list[str]
) -> list[list[int]] | None:
    """Each label's reply tokens, the same after every prompt (None when the chat template makes them differ)."""

    def reply(messages, ids, label):
        full = _chat_ids(tokenizer, messages + [{"role": "assistant", "content": label}], generation_prompt=False)
        return reply_tokens(tokenizer, ids, full)

    replies = [reply(prompts[0], prompt_ids[0], label) for label in labels]
    for messages, ids in zip(prompts[1:], prompt_ids[1:], strict=True):
        if reply(messages, ids, labels[0]) != replies[0]:
            return None
    return replies


@torch.no_grad()
def label_logprobs(
    model, tokenizer, prompts: list[list[dict[str, str]]], labels: list[str], batch_size: int = 16,
    candidates: int | None = None,
) -> np.ndarray:  # fmt: skip
    """Log-likelihood of each label as the assistant's whole reply, shape (len(prompts), len(labels)).

    Scoring every allowed label (as lm-eval does for multiple choice) gives each model a fair answer
    even when it would phrase a free-form reply differently. Labels are scored over a prefix tree of their
    tokens, `batch_size` prompts per pass (tunesmith/evaluation/label_tree.py). With `candidates`, only as many
    labels as it takes to find each row's most likely one exactly are scored; the rest are -inf.
    """
    scores = np.empty((len(prompts), len(labels)))
    if not prompts:
        return scores
    if uses_virtual_tokens(model) or not supports_tree_masks(model):
        return _label_logprobs_per_prompt(model, tokenizer, prompts, labels, batch_size)
    prompt_ids = [_chat_ids(tokenizer, m, generation_prompt=True) for m in prompts]
    replies = label_replies(tokenizer, prompts, prompt_ids, labels)
    if replies is None:
        return _label_logprobs_per_prompt(model, tokenizer, prompts, labels, batch_size)
    for start in range(0, len(prompts), batch_size):
        chunk = prompt_ids[start : start + batch_size]
        scores[start : start + len(chunk)] = score_labels(
            model, chunk, replies, tokenizer.pad_token_id, candidates
        ).numpy()
        progress.advance(len(chunk))
    return scores


def _label_logprobs_per_prompt(model, tokenizer, prompts, labels, batch_size: int) -> np.ndarray:
    """One prompt at a time, each label as a whole sequence: for prefix and prompt tuning, whose virtual
    positions do not combine with a tree mask, and for attention implementations that take no custom mask."""
    scores = np.empty((len(prompts), len(labels)))
    for i, messages in enumerate(prompts):
        prompt_ids = _chat_ids(tokenizer, messages, generation_prompt=True)
        continuations = [
            reply_tokens(
                tokenizer,
                prompt_ids,
                _chat_ids(tokenizer, messages + [{"role": "assistant", "content": label}], generation_prompt=False),
            )
            for label in labels
        ]
        for start in range(0, len(labels), batch_size):
            chunk = continuations[start : start + batch_size]
            scores[i, start : start + len(chunk)] = _continuation_logprobs(
                model, prompt_ids, chunk, tokenizer.pad_token_id
            )
        progress.advance()
    return scores


@torch.no_grad()
def generate(
    model,
    tokenizer,
    prompts: list[list[dict[str, str]]],
    max_new_tokens: int = 64,
    batch_size: int = 16,
    min_new_tokens: int = 0,
) -> list[str]:
    """Greedy replies to chat prompts, batched with left padding (min_new_tokens: no end before that many)."""
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    replies: list[str] = []
    try:
        for start in range(0, len(prompts), batch_size):
            texts = [
                tokenizer.apply_chat_template(m, add_generation_prompt=True, tokenize=False)
                for m in prompts[start : start + batch_size]
            ]
            batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            out = model.generate(
                **batch,
                max_new_tokens=max_new_tokens,
                min_new_tokens=min_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
            replies += tokenizer.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
            progress.advance(len(texts))
    finally:
        tokenizer.padding_side = side
    return [r.strip() for r in replies]


# Whole conversations' logits over the vocabulary are most of a scoring batch's memory: 16 HH-RLHF test
# conversations of up to 1,500 tokens made 16 x 1,500 x 49k logits plus their fp32 copies, and a run's evaluation
# went out of memory on a 23 GB machine. A batch holds at most this many padded tokens (0.8 GB of bf16 logits).
TOKENS_PER_BATCH = 8192


def token_batches(
    lengths: list[int],
    max_rows: int,
    max_tokens: int = TOKENS_PER_BATCH,
    width: Callable[[list[int]], int] | None = None,
) -> list[list[int]]:
    """Indices in batches, longest first (similar lengths pad little), each within `max_rows` rows and
    `max_tokens` padded tokens (rows x `width(batch)`, by default its longest row); a row over the token budget
    alone gets a batch of its own."""
    width = width or (lambda batch: max(lengths[i] for i in batch))
    batches: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        batch = batches[-1] if batches else []
        grown = [*batch, i]
        if batch and len(grown) <= max_rows and len(grown) * width(grown) <= max_tokens:
            batch.append(i)
        else:
            batches.append([i])
    return batches


@torch.no_grad()
def perplexity(model, tokenizer, conversations: list[list[dict[str, str]]], batch_size: int = 8) -> float:
    """exp(mean negative log-likelihood) of the assistant tokens of whole conversations."""
    from tunesmith.training.tokenize import tokenize_conversation

    rows = [tokenize_conversation(tokenizer, c) for c in conversations]
    total_nll, total_tokens = 0.0, 0
    for batch in token_batches([len(r["input_ids"]) for r in rows], batch_size):
        chunk = [rows[i] for i in batch]
        width = max(len(r["input_ids"]) for r in chunk)
        ids = torch.full((len(chunk), width), tokenizer.pad_token_id, dtype=torch.long)
        labels = torch.full((len(chunk), width), -100, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for i, r in enumerate(chunk):
            ids[i, : len(r["input_ids"])] = torch.tensor(r["input_ids"])
            labels[i, : len(r["labels"])] = torch.tensor(r["labels"])
            mask[i, : len(r["input_ids"])] = 1
        logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device)).logits
        logits = logits[:, -width:]  # prompt tuning returns its virtual positions first
        targets = labels[:, 1:].to(model.device)
        scored = targets != -100  # in fp32 only where an answer token is predicted
        nll = torch.nn.functional.cross_entropy(logits[:, :-1][scored].float(), targets[scored], reduction="sum")
        total_nll += nll.item()
        total_tokens += int(scored.sum())
    return math.exp(total_nll / max(total_tokens, 1))
