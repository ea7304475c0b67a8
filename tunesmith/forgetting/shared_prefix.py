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
    import torch
    import torch.nn.functional as F
    from transformers import DynamicCache

    class SharedPrefix(lm_class):
        def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs: int | None = None):
            if not shares_prefixes(self.model):
                return super()._loglikelihood_tokens(requests, disable_tqdm, override_bs)
            groups: dict[tuple[int, ...], list[int]] = {}
            for i, (_, context, _) in enumerate(requests):
                groups.setdefault(tuple(context), []).append(i)
            shared: list[tuple[list[int], list[int]]] = []
            alone: list[int] = []
            for context, members in groups.items():
                # One choice gains nothing; one-token choices lm-eval already scores from one read of the context;
                # an over-long one needs lm-eval's left truncation.
                longest = max(len(requests[i][2]) for i in members)
                if len(members) < 2 or len(context) + longest > self.max_length + 1:
                    alone += members
                else:
                    shared.append((list(context), members))
            shared.sort(key=lambda group: -len(group[0]))  # questions of similar length together: little padding
            per_batch = override_bs or (self.batch_size if isinstance(self.batch_size, int) else 16)
            results: list[Any] = [None] * len(requests)
            for start in range(0, len(shared), per_batch):
                batch = shared[start : start + per_batch]
                answers = self._score_choices([c for c, _ in batch], [[requests[i][2] for i in m] for _, m in batch])
                for i, answer in zip([i for _, m in batch for i in m], answers, strict=True):
                    results[i] = answer
                    self.cache_hook.add_partial("loglikelihood", requests[i][0], answer)
            if alone:
                scored = super()._loglikelihood_tokens([requests[i] for i in alone], True, override_bs)
                for i, answer in zip(alone, scored, strict=True):
                    results[i] = answer
            return results

        @torch.no_grad()
        def _score_choices(self, contexts: list[list[int]], choices: list[list[list[int]]]) -> list[tuple[float, bool]]:
            """(sum of log-probabilities, whether greedy decoding yields it) for each choice of each context, in
            order. The contexts run in one batch (right-padded), keeping the logits of each one's last token only;
            the choices then run on copies of their context's key/value cache in sub-batches of similar length
            (padding a 5-token choice to a 60-token one would cost what the shared question saved), with the
            context's padding masked and positions continuing its own."""
            device, lengths = self.device, torch.tensor([len(c) for c in contexts])
            ids = torch.zeros((len(contexts), int(lengths.max())), dtype=torch.long)
            for row, context in enumerate(contexts):
                ids[row, : len(context)] = torch.tensor(context)
            mask = (torch.arange(ids.shape[1])[None] < lengths[:, None]).long()
            ends = torch.unique(lengths - 1)  # the vocabulary projection only where a choice's first token is read
            # No mask: a real token never attends to the right padding after it, and without one attention takes
            # its causal fast path (with one, boolq's long passages read 20% slower than lm-eval's own scorer).
            read = self.model(ids.to(device), use_cache=True, logits_to_keep=ends.to(device))
            first = read.logits[torch.arange(len(contexts)), torch.searchsorted(ends, lengths - 1)]
            rows = [(group, tokens) for group, options in enumerate(choices) for tokens in options]
            logits: list[Any] = [first[group][None] for group, _ in rows]
            longer = [row for row, (_, tokens) in enumerate(rows) if len(tokens) > 1]
            order = sorted(longer, key=lambda row: len(rows[row][1]))
            layers = [(layer.keys, layer.values) for layer in read.past_key_values.layers]
            for start in range(0, len(order), len(contexts)):
                chunk = order[start : start + len(contexts)]
                of = torch.tensor([rows[r][0] for r in chunk])
                cache = DynamicCache([(keys[of.to(device)], values[of.to(device)]) for keys, values in layers])
                longest = max(len(rows[r][1]) for r in chunk) - 1
                tail = torch.zeros((len(chunk), longest), dtype=torch.long)
                for i, r in enumerate(chunk):
                    tail[i, : len(rows[r][1]) - 1] = torch.tensor(rows[r][1][:-1])
                # the choices' own right padding needs no mask: a real token never attends to what follows it
                full_mask = torch.cat([mask[of], torch.ones_like(tail)], dim=1)
                positions = lengths[of][:, None] + torch.arange(longest)[None]
                rest = self.model(tail.to(device), attention_mask=full_mask.to(device),
                                  position_ids=positions.to(device), past_key_values=cache).logits  # fmt: skip
                for i, r in enumerate(chunk):
                    logits[r] = torch.cat([logits[r], rest[i, : len(rows[r][1]) - 1]])
            answers = []
            for (_, tokens), row_logits in zip(rows, logits, strict=True):
                steps = F.log_softmax(row_logits.float(), dim=-1)
                target = torch.tensor(tokens, device=device)
                logprob = steps.gather(1, target[:, None]).sum()
                answers.append((float(logprob), bool((steps.argmax(dim=-1) == target).all())))
            return answers

    return SharedPrefix
