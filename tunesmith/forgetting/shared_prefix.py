"""Multiple-choice scoring that computes a question once for all its answer choices.

lm-eval's HF model scores every (question, choice) pair as its own sequence, so a four-choice question runs its
question through the model four times; its one-token cache only helps when each choice is a single token. Here
the question runs once, its key/value cache is repeated for the choices, and only the choices' tokens run again:
on a CPU, where the standard tier's questions are most of the tokens, that is most of the work saved. The scores
are the ones lm-eval computes (the same token ids, the sum of the choice's log-probabilities and whether each of
its tokens is the greedy one), up to floating-point rounding between a cached and an uncached forward pass.
"""

from __future__ import annotations

import torch

Request = tuple[tuple[str, str], list[int], list[int]]  # lm-eval's: ((context, continuation), ids, ids)


def can_share_prefix(model) -> bool:
    """Models whose forward pass takes a key/value cache of the caller's: not prompt or prefix tuning, whose
    virtual tokens occupy that cache themselves."""
    config = getattr(model, "active_peft_config", None)
    return not (config is not None and config.is_prompt_learning)


@torch.no_grad()
def score_questions(model, questions: list[tuple[list[int], list[list[int]]]]) -> list[list[tuple[float, bool]]]:
    """For each (context, continuations): (sum of log-probabilities, greedy) of each continuation after it.

    Pass one runs every context but its last token, left-padded into one batch. Its key/value cache is repeated
    once per choice, and pass two runs each choice as [last context token] + its tokens but the last,
    right-padded, so that the logits at its positions predict its tokens. Positions are given explicitly so that
    padding does not shift them."""
    device = model.device
    heads = [context[:-1] for context, _ in questions]
    seen = max(len(h) for h in heads)
    rows = [(q, c) for q, (_, continuations) in enumerate(questions) for c in continuations]
    width = max(len(c) for _, c in rows)
    cache = None
    prefix_mask = torch.zeros((len(questions), seen), dtype=torch.long, device=device)
    if seen:
        ids = torch.zeros((len(questions), seen), dtype=torch.long, device=device)
        for q, head in enumerate(heads):
            if head:
                ids[q, seen - len(head) :] = torch.tensor(head, device=device)
                prefix_mask[q, seen - len(head) :] = 1
        positions = (prefix_mask.cumsum(-1) - 1).clamp(min=0)
        # logits_to_keep=1: the cache is what is wanted; the vocabulary projection of every context token is not.
        cache = model(input_ids=ids, attention_mask=prefix_mask, position_ids=positions, use_cache=True,
                      logits_to_keep=1).past_key_values  # fmt: skip
        cache.batch_select_indices(torch.tensor([q for q, _ in rows], device=device))
    ids = torch.zeros((len(rows), width), dtype=torch.long, device=device)
    mask = torch.zeros((len(rows), seen + width), dtype=torch.long, device=device)
    positions = torch.zeros((len(rows), width), dtype=torch.long, device=device)
    for r, (q, continuation) in enumerate(rows):
        tokens = [questions[q][0][-1], *continuation[:-1]]
        ids[r, : len(tokens)] = torch.tensor(tokens, device=device)
        mask[r, :seen] = prefix_mask[q]
        mask[r, seen : seen + len(tokens)] = 1
        positions[r] = len(heads[q]) + torch.arange(width, device=device)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                   use_cache=cache is not None).logits  # fmt: skip
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    results: list[list[tuple[float, bool]]] = [[] for _ in questions]
    for r, (q, continuation) in enumerate(rows):
        target = torch.tensor(continuation, device=device)
        scores = logprobs[r, : len(continuation)]
        total = scores.gather(1, target[:, None]).sum().item()
        results[q].append((float(total), bool((scores.argmax(dim=-1) == target).all())))
    return results


def score_requests(
    model, requests: list[Request], max_length: int, batch_size: int = 16
) -> list[tuple[float, bool] | None]:
    """Every request whose context and continuation fit `max_length`, grouped by context, `batch_size` contexts
    at a time; None for the others (lm-eval's own path truncates those)."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, (_, context, continuation) in enumerate(requests):
        if context and continuation and len(context) + len(continuation) <= max_length:
            groups.setdefault(tuple(context), []).append(i)
    ordered = sorted(groups.items(), key=lambda item: -len(item[0]))  # similar lengths share a batch: less padding
    results: list[tuple[float, bool] | None] = [None] * len(requests)
    for start in range(0, len(ordered), batch_size):
        batch = ordered[start : start + batch_size]
        scored = score_questions(
            model, [(list(context), [requests[i][2] for i in indices]) for context, indices in batch]
        )
        for (_, indices), question in zip(batch, scored, strict=True):
            for i, result in zip(indices, question, strict=True):
                results[i] = result
    return results
