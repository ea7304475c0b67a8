"""Model-side primitives for evaluation: label log-likelihoods and batched greedy generation."""

from __future__ import annotations

import copy
import math

import numpy as np
import torch

from tunesmith.console import progress


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


@torch.no_grad()
def label_logprobs(
    model, tokenizer, prompts: list[list[dict[str, str]]], labels: list[str], batch_size: int = 16
) -> np.ndarray:
    """Log-likelihood of each label as the assistant's whole reply, shape (len(prompts), len(labels)).

    Scoring every allowed label (as lm-eval does for multiple choice) gives each model a fair answer
    even when it would phrase a free-form reply differently. The prompt runs once; its key/value cache is
    shared by all labels, so the cost barely grows with the number of labels.
    """
    scores = np.empty((len(prompts), len(labels)))
    device = model.device
    for i, messages in enumerate(prompts):
        prompt_ids = _chat_ids(tokenizer, messages, generation_prompt=True)
        continuations = []
        for label in labels:
            full = _chat_ids(tokenizer, messages + [{"role": "assistant", "content": label}], generation_prompt=False)
            if full[: len(prompt_ids)] != prompt_ids:
                raise ValueError("the chat template does not extend the prompt when the answer is added")
            continuations.append(full[len(prompt_ids) :])
        if uses_virtual_tokens(model):
            for start in range(0, len(labels), batch_size):
                chunk = continuations[start : start + batch_size]
                scores[i, start : start + len(chunk)] = _continuation_logprobs(
                    model, prompt_ids, chunk, tokenizer.pad_token_id
                )
            progress.advance()
            continue
        out = model(input_ids=torch.tensor([prompt_ids], device=device), use_cache=True)
        first = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
        for start in range(0, len(labels), batch_size):
            chunk = continuations[start : start + batch_size]
            width = max(len(c) for c in chunk)
            ids = torch.full((len(chunk), width), tokenizer.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), len(prompt_ids) + width), dtype=torch.long)
            mask[:, : len(prompt_ids)] = 1
            for row, cont in enumerate(chunk):
                ids[row, : len(cont)] = torch.tensor(cont)
                mask[row, len(prompt_ids) : len(prompt_ids) + len(cont)] = 1
            cache = copy.deepcopy(out.past_key_values)
            cache.batch_repeat_interleave(len(chunk))
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), past_key_values=cache).logits
            logprobs = torch.log_softmax(logits.float(), dim=-1).cpu()
            for row, cont in enumerate(chunk):
                total = first[cont[0]].item()
                total += sum(logprobs[row, j - 1, cont[j]].item() for j in range(1, len(cont)))
                scores[i, start + row] = total
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


@torch.no_grad()
def perplexity(model, tokenizer, conversations: list[list[dict[str, str]]], batch_size: int = 8) -> float:
    """exp(mean negative log-likelihood) of the assistant tokens of whole conversations."""
    from tunesmith.training.tokenize import tokenize_conversation

    rows = [tokenize_conversation(tokenizer, c) for c in conversations]
    total_nll, total_tokens = 0.0, 0
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        width = max(len(r["input_ids"]) for r in chunk)
        ids = torch.full((len(chunk), width), tokenizer.pad_token_id, dtype=torch.long)
        labels = torch.full((len(chunk), width), -100, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for i, r in enumerate(chunk):
            ids[i, : len(r["input_ids"])] = torch.tensor(r["input_ids"])
            labels[i, : len(r["labels"])] = torch.tensor(r["labels"])
            mask[i, : len(r["input_ids"])] = 1
        logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device)).logits.float()
        logits = logits[:, -width:]  # prompt tuning returns its virtual positions first
        targets = labels[:, 1:].to(model.device)
        nll = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100, reduction="sum"
        )
        total_nll += nll.item()
        total_tokens += int((targets != -100).sum())
    return math.exp(total_nll / max(total_tokens, 1))
