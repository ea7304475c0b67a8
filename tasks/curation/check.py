"""`tunesmith check`: every problem in the data that a run would reject, without training."""

from __future__ import annotations

from tasks.config import RunConfig
from tasks.curation.curate import count_tokens
from tasks.curation.load import load_inputs
from tasks.prompts import system_prompt


def check_data(config: RunConfig, tokenizer=None) -> tuple[int, list[str]]:
    """Return (rows read, problems): each problem names the file, the line and the field."""
    data = config.data
    loaded = load_inputs(data)
    problems = [r.message() for r in loaded.rejected]
    if tokenizer is not None and loaded.examples:
        system = system_prompt(config.prompt.system, data.labels)
        limit = config.training.max_seq_length
        tokens = count_tokens(loaded.examples, tokenizer, system)
        problems += [
            f"{e.source}: example is {tokens[e.id]} tokens, longer than training.max_seq_length {limit}"
            for e in loaded.examples
            if tokens[e.id] > limit
        ]
    return loaded.read, problems
