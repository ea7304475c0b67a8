"""Multiple-choice scoring that reads each question once for all its answer choices.

lm-eval scores a question with k choices as k sequences "question + choice", so the question's tokens go through
the model k times (its one-token shortcut covers only single-token choices). On a CPU the cost is the tokens
computed, and the questions are about half of them in the bundled tiers (measured with the default model's
tokenizer: 97,814 of 213,780 tokens for the standard tier, 287,447 of 658,486 for the large one). Here the
question runs once, its key/value cache is copied for the k choices, and only the choices' tokens run again:
the same log-likelihoods up to float rounding. Measured by benchmarks/forgetting_scoring.py on the standard tier
(1,016 questions, the default model in bf16 on 2 CPU cores): 124 s against lm-eval's 189 s (1.52x), with 5
questions' right/wrong differing between the two (near ties that bf16 rounding tips either way). lm-eval has no
such option (its own source leaves it as a TODO), hence this subclass of its HF model rather than a setting.

On a GPU lm-eval's large batches of whole sequences already keep the device busy (and `backend: auto` serves
through vLLM, which caches shared prefixes itself), so this is used for in-process scoring on a CPU only.
"""

from __future__ import annotations

from typing import Any


def shares_prefixes(model: Any) -> bool:
    """Whether a model can continue from a copied key/value cache: not prefix or prompt tuning, whose virtual
    tokens PEFT adds on every forward call."""
    config = getattr(model, "active_peft_config", None)
    return not getattr(config, "is_prompt_learning", False)


def shared_prefix(lm_class):
    """`lm_class` (lm-eval's HFLM) scoring each distinct context once for all the continuations asked of it."""

    class SharedPrefix(lm_class):
        def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs: int | None = None):
            if not shares_prefixes(self.model):
                return super()._loglikelihood_tokens(requests, disable_tqdm, override_bs)
            shared, alone = _group(requests, self.max_length)
            per_batch = override_bs or (self.batch_size if isinstance(self.batch_size, int) else 16)
            results: list[Any] = [None] * len(requests)
            for start in range(0, len(shared), per_batch):
                batch = shared[start : start + per_batch]
                contexts, choices = [c for c, _ in batch], [[requests[i][2] for i in m] for _, m in batch]
                answers = score_choices(self.model, self.device, contexts, choices)
                for i, answer in zip([i for _, m in batch for i in m], answers, strict=True):
                    results[i] = answer
                    self.cache_hook.add_partial("loglikelihood", requests[i][0], answer)
            if alone:
                scored = super()._loglikelihood_tokens([requests[i] for i in alone], True, override_bs)
                for i, answer in zip(alone, scored, strict=True):
                    results[i] = answer
            return results

    return SharedPrefix


def _group(requests, max_length: int) -> tuple[list[tuple[list[int], list[int]]], list[int]]:
    """lm-eval's (key, context tokens, continuation tokens) requests as (context, request indices) groups to read
    once, longest context first (similar lengths batch with little padding), and the indices lm-eval scores
    itself: a context with one continuation gains nothing, an over-long one needs lm-eval's left truncation."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, (_, context, _) in enumerate(requests):
        groups.setdefault(tuple(context), []).append(i)
    shared: list[tuple[list[int], list[int]]] = []
    alone: list[int] = []
    for context, members in groups.items():
        longest = max(len(requests[i][2]) for i in members)
        if len(members) < 2 or len(context) + longest > max_length + 1:
            alone += members
        else:
            shared.append((list(context), members))
    shared.sort(key=lambda group: -len(group[0]))
    return shared, alone


def score_choices(model, device, contexts: list[list[int]], choices: list[list[list[int]]]) -> list[tuple[float, bool]]:
    """(sum of log-probabilities, whether greedy decoding yields it) for each choice of each context, in order.
    The contexts run in one batch (right-padded), keeping the logits of each one's last token only; the choices
    then run on copies of their context's key/value cache in sub-batches of similar length (padding a 5-token
    choice to a 60-token one would cost what the shared question saved)."""
    import torch
    import torch.nn.functional as F

    with torch.no_grad():
        lengths = torch.tensor([len(c) for c in contexts])
        ids = torch.zeros((len(contexts), int(lengths.max())), dtype=torch.long)
        for row, context in enumerate(contexts):
            ids[row, : len(context)] = torch.tensor(context)
        ends = torch.unique(lengths - 1)  # the vocabulary projection only where a choice's first token is read
        # No mask: a real token never attends to the right padding after it, and without one attention takes
        # its causal fast path (with one, boolq's long passages read 20% slower than lm-eval's own scorer).
        read = model(ids.to(device), use_cache=True, logits_to_keep=ends.to(device))
        first = read.logits[torch.arange(len(contexts)), torch.searchsorted(ends, lengths - 1)]
        rows = [(group, tokens) for group, options in enumerate(choices) for tokens in options]
        logits: list[Any] = [first[group][None] for group, _ in rows]
        longer = sorted((r for r, (_, tokens) in enumerate(rows) if len(tokens) > 1), key=lambda r: len(rows[r][1]))
        layers = [(layer.keys, layer.values) for layer in read.past_key_values.layers]
        for start in range(0, len(longer), len(contexts)):
            chunk = longer[start : start + len(contexts)]
            rest = _continue(model, device, layers, lengths, [rows[r] for r in chunk])
            for i, r in enumerate(chunk):
                logits[r] = torch.cat([logits[r], rest[i, : len(rows[r][1]) - 1]])
        answers = []
        for (_, tokens), row_logits in zip(rows, logits, strict=True):
            steps = F.log_softmax(row_logits.float(), dim=-1)
            target = torch.tensor(tokens, device=device)
            logprob = steps.gather(1, target[:, None]).sum()
            answers.append((float(logprob), bool((steps.argmax(dim=-1) == target).all())))
        return answers


def _continue(model, device, layers, lengths, rows: list[tuple[int, list[int]]]):
    """Logits after each token but the last of each (context index, choice tokens) row, continuing from a copy of
    its context's keys and values (`layers`), with the context's padding masked and positions continuing its own."""
    import torch
    from transformers import DynamicCache

    of = torch.tensor([group for group, _ in rows])
    on_device = of.to(device)
    cache = DynamicCache([(keys[on_device], values[on_device]) for keys, values in layers])
    longest = max(len(tokens) for _, tokens in rows) - 1
    tail = torch.zeros((len(rows), longest), dtype=torch.long)
    for i, (_, tokens) in enumerate(rows):
        tail[i, : len(tokens) - 1] = torch.tensor(tokens[:-1])
    context_mask = (torch.arange(int(lengths.max()))[None] < lengths[of][:, None]).long()
    # the choices' own right padding needs no mask: a real token never attends to what follows it
    mask = torch.cat([context_mask, torch.ones_like(tail)], dim=1)
    positions = lengths[of][:, None] + torch.arange(longest)[None]
    return model(tail.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                 past_key_values=cache).logits  # fmt: skip
