"""Model-side primitives for evaluation: label log-likelihoods and batched greedy generation."""

from __future__ import annotations

import numpy as np
import torch


def _chat_ids(tokenizer, messages: list[dict[str, str]], generation_prompt: bool) -> list[int]:
    encoded = tokenizer.apply_chat_template(
        messages, add_generation_prompt=generation_prompt, tokenize=True, return_dict=True
    )
    return list(encoded["input_ids"])


@torch.no_grad()
def label_logprobs(
    model, tokenizer, prompts: list[list[dict[str, str]]], labels: list[str], batch_size: int = 16
) -> np.ndarray:
    """Log-likelihood of each label as the assistant's whole reply, shape (len(prompts), len(labels)).

    Scoring every allowed label (as lm-eval does for multiple choice) gives each model a fair answer
    even when it would phrase a free-form reply differently.
    """
    pairs: list[tuple[list[int], int]] = []  # (token ids, length of the prompt part)
    for messages in prompts:
        prompt_ids = _chat_ids(tokenizer, messages, generation_prompt=True)
        for label in labels:
            full = _chat_ids(tokenizer, messages + [{"role": "assistant", "content": label}], generation_prompt=False)
            pairs.append((full, len(prompt_ids)))
    scores = np.empty(len(pairs))
    device = model.device
    pad = tokenizer.pad_token_id
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        width = max(len(ids) for ids, _ in chunk)
        input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        attention = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, (ids, _) in enumerate(chunk):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention[row, : len(ids)] = 1
        logits = model(input_ids=input_ids.to(device), attention_mask=attention.to(device)).logits.float()
        logprobs = torch.log_softmax(logits[:, :-1], dim=-1)
        targets = input_ids[:, 1:].to(device)
        token_lp = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1).cpu()
        for row, (ids, prompt_len) in enumerate(chunk):
            scores[start + row] = token_lp[row, prompt_len - 1 : len(ids) - 1].sum().item()
    return scores.reshape(len(prompts), len(labels))


@torch.no_grad()
def generate(
    model, tokenizer, prompts: list[list[dict[str, str]]], max_new_tokens: int = 64, batch_size: int = 16
) -> list[str]:
    """Greedy replies to chat prompts, batched with left padding."""
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
                **batch, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
            )
            replies += tokenizer.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    finally:
        tokenizer.padding_side = side
    return [r.strip() for r in replies]
