"""Label likelihoods over a prefix tree of the labels' tokens, several examples per forward pass.

Every label is scored as the assistant's whole reply. Its tokens are laid out as a tree after the prompt
(labels that share a first token share that node), each node attending to the prompt and its own ancestors
through a 4D attention mask, with position ids that continue the prompt: one forward pass scores every
label of every example in a batch, and the prompt's key/value cache is computed once.

Picking the most likely label does not need every label's score: a label's log-likelihood is at most
that of its first token, so once the best fully scored candidate beats the first-token bound of every other
label, the choice is exact. Only the labels with the highest first-token bounds are scored in full; the
rest are scored only when their bound says they could still win.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

MASKING_ATTENTION = ("sdpa", "eager")  # implementations that take a custom 4D additive mask as it is


@dataclass
class LabelTree:
    tokens: list[int]  # the token of each node; parents come before their children
    parents: list[int]  # the parent node of each node, -1 for a label's first token
    depths: list[int]
    paths: list[list[int]]  # the nodes of each label's reply, in order

    @classmethod
    def of(cls, continuations: list[list[int]]) -> LabelTree:
        tree, index = cls([], [], [], []), {}
        for tokens in continuations:
            path, parent = [], -1
            for depth, token in enumerate(tokens):
                key = (parent, token)
                if key not in index:
                    index[key] = len(tree.tokens)
                    tree.tokens.append(token)
                    tree.parents.append(parent)
                    tree.depths.append(depth)
                parent = index[key]
                path.append(parent)
            tree.paths.append(path)
        return tree

    def ancestry(self) -> torch.Tensor:
        """(n, n) bool: node i may attend to node j (j is i or one of its ancestors)."""
        n = len(self.tokens)
        allowed = torch.eye(n, dtype=torch.bool)
        for node, parent in enumerate(self.parents):
            if parent >= 0:
                allowed[node] |= allowed[parent]
        return allowed


def supports_tree_masks(model) -> bool:
    implementation = getattr(getattr(model, "config", None), "_attn_implementation", None)
    return implementation in MASKING_ATTENTION


def reply_tokens(tokenizer, prompt_ids: list[int], full_ids: list[int]) -> list[int]:
    """The reply's tokens up to and including the end-of-turn token: what follows it (a newline most templates
    add) is the same for every label and would only add work."""
    if full_ids[: len(prompt_ids)] != prompt_ids:
        raise ValueError("the chat template does not extend the prompt when the answer is added")
    reply = full_ids[len(prompt_ids) :]
    end = tokenizer.eos_token_id
    return reply[: reply.index(end) + 1] if end in reply else reply


def _prompt_pass(model, prompts: list[list[int]], pad_id: int):
    """Left-padded prompts in one pass: the next-token log-probabilities after each prompt, and the cache."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt) :] = torch.tensor(prompt)
        mask[row, width - len(prompt) :] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    device = model.device
    out = model(
        input_ids=ids.to(device),
        attention_mask=mask.to(device),
        position_ids=positions.to(device),
        use_cache=True,
        logits_to_keep=1,
    )
    return torch.log_softmax(out.logits[:, -1].float(), dim=-1), out.past_key_values, mask


class _Search:
    """The label tree over one batch of prompts, fed into the prompts' key/value cache a few nodes at a time.

    prefix[b, j] is the log-likelihood, after prompt b, of the reply's tokens from the first up to node j;
    it is known once node j's parent has been fed (the first tokens' from the prompt pass)."""

    CHUNK = 128  # nodes per forward pass: bounds the (batch, nodes, vocabulary) logits held at once

    def __init__(self, model, tree: LabelTree, prompts: list[list[int]], pad_id: int):
        self.model, self.tree = model, tree
        first, self.cache, self.prompt_mask = _prompt_pass(model, prompts, pad_id)
        n = len(tree.tokens)
        self.prefix = torch.full((len(prompts), n), float("nan"))
        roots = [j for j in range(n) if tree.parents[j] < 0]
        self.prefix[:, roots] = first[:, [tree.tokens[j] for j in roots]].cpu()
        self.children: list[list[int]] = [[] for _ in range(n)]
        for j, parent in enumerate(tree.parents):
            if parent >= 0:
                self.children[parent].append(j)
        self.ancestry = tree.ancestry()
        self.fed: list[int] = []  # nodes in the cache, in cache order after the prompts
        # SDPA takes a boolean mask (True: attend); eager attention adds the mask to its scores, so it gets the
        # additive form in the dtype of the activations (the embeddings', which quantization leaves alone).
        self.boolean_mask = model.config._attn_implementation == "sdpa"
        self.dtype = model.get_input_embeddings().weight.dtype

    def expandable(self) -> list[int]:
        """Nodes not yet fed that have children and a known prefix."""
        fed = set(self.fed)
        known = ~torch.isnan(self.prefix).all(0)
        return [j for j in range(len(self.tree.tokens)) if j not in fed and self.children[j] and known[j]]

    def unfed_subtree(self) -> list[int]:
        """Every node with children that is not fed yet: the rest of the tree."""
        fed = set(self.fed)
        return [j for j in range(len(self.tree.tokens)) if j not in fed and self.children[j]]

    def feed(self, nodes: list[int]) -> None:
        """Feed nodes (each with its ancestors fed before or among them) and learn their children's prefixes."""
        nodes = sorted(nodes, key=lambda j: self.tree.depths[j])
        for start in range(0, len(nodes), self.CHUNK):
            self._pass(nodes[start : start + self.CHUNK])

    def _pass(self, nodes: list[int]) -> None:
        batch, width = self.prompt_mask.shape
        order = self.fed + nodes
        index = torch.tensor(order)
        allowed_nodes = self.ancestry[torch.tensor(nodes)][:, index]  # (new, fed + new): ancestors and self
        allowed = torch.cat(
            [
                self.prompt_mask.bool()[:, None, :].expand(batch, len(nodes), width),
                allowed_nodes[None].expand(batch, -1, -1),
            ],
            -1,
        )
        if self.boolean_mask:
            mask = allowed[:, None]
        else:
            mask = torch.zeros(allowed.shape, dtype=self.dtype).masked_fill(~allowed, torch.finfo(self.dtype).min)
            mask = mask[:, None]
        depths = torch.tensor([self.tree.depths[j] for j in nodes])
        positions = self.prompt_mask.sum(-1, keepdim=True) + depths[None]
        tokens = torch.tensor([self.tree.tokens[j] for j in nodes])[None].expand(batch, -1)
        device = self.model.device
        logits = self.model(
            input_ids=tokens.to(device),
            attention_mask=mask.to(device),
            position_ids=positions.to(device),
            past_key_values=self.cache,
            use_cache=True,
        ).logits
        self.fed += nodes
        normaliser = logits.float().logsumexp(-1)  # (batch, new)
        for j_row, j in enumerate(nodes):  # in depth order: a parent's prefix is known before its children's
            kids = self.children[j]
            if not kids:
                continue
            tokens = torch.tensor([self.tree.tokens[k] for k in kids], device=device)
            step = (logits[:, j_row, tokens].float() - normaliser[:, j_row : j_row + 1]).cpu()
            self.prefix[:, kids] = self.prefix[:, j : j + 1] + step

    def label_scores(self) -> torch.Tensor:
        """(batch, labels): each label's log-likelihood where known, else -inf."""
        scores = self.prefix[:, [path[-1] for path in self.tree.paths]]
        return torch.nan_to_num(scores, nan=float("-inf"))


@torch.no_grad()
def score_labels(
    model, prompts: list[list[int]], continuations: list[list[int]], pad_id: int, candidates: int | None = None
) -> torch.Tensor:
    """(len(prompts), len(labels)) label log-likelihoods.

    With `candidates`, only what it takes to pick each row's best label exactly is computed (the others are
    -inf): the paths of the `candidates` labels with the most likely first tokens per row, then, level by
    level, every node whose prefix could still lead to a label better than the row's best so far."""
    tree = LabelTree.of(continuations)
    search = _Search(model, tree, prompts, pad_id)
    if candidates is None or candidates >= len(continuations):
        search.feed(
            search.expandable() + [j for j in range(len(tree.tokens)) if search.children[j] and tree.parents[j] >= 0]
        )
        return search.label_scores()
    bounds = search.prefix[:, [path[0] for path in tree.paths]]
    kth = bounds.topk(candidates, dim=-1).values[:, -1:]
    chosen = (bounds >= kth).any(0).nonzero().flatten().tolist()
    search.feed(sorted({j for label in chosen for j in tree.paths[label] if search.children[j]}))
    while True:
        best = search.label_scores().max(-1, keepdim=True).values
        open_nodes = search.expandable()
        frontier = [j for j in open_nodes if (search.prefix[:, j : j + 1] > best).any()]
        if not frontier:
            return search.label_scores()
        if len(frontier) > len(open_nodes) // 2:
            # A model that spreads its probability over many labels (an untrained one, say) would take a round
            # per level of the tree: feed the rest of the tree at once instead.
            search.feed(search.unfed_subtree())
        else:
            search.feed(frontier)
