"""LLM-as-judge: a second model scores answers against a rubric, with a rationale for each score.

The judge is a local Hugging Face model (scored by its probabilities over "1".."5", so every verdict is
usable) or any OpenAI-compatible chat endpoint (its reply is parsed for a score and a rationale).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass

import numpy as np

SCORES = ["1", "2", "3", "4", "5"]
INSTRUCTIONS = (
    "You are a strict grader. {rubric}\n"
    'Rate the answer from 1 (wrong or useless) to 5 (correct and complete). Reply as JSON: {{"score": <1-5>, '
    '"rationale": "<one sentence>"}}.'
)


@dataclass
class Verdict:
    score: float | None  # None when an endpoint's reply had no readable score
    rationale: str

    def to_json(self) -> dict:
        return asdict(self)


def judge_messages(rubric: str, question: str, reference: str, answer: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": INSTRUCTIONS.format(rubric=rubric)},
        {
            "role": "user",
            "content": f"Question:\n{question}\n\nReference answer:\n{reference}\n\nAnswer to rate:\n{answer}",
        },
    ]


def parse_verdict(text: str) -> Verdict:
    """A score from a JSON reply, else from the first digit 1-5 in the text."""
    match = re.search(r"\{.*\}", text, re.DOTALL)
    if match:
        try:
            data = json.loads(match.group(0))
            score = float(data["score"])
            if 1 <= score <= 5:
                return Verdict(score, str(data.get("rationale", "")).strip() or text.strip())
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            pass
    digit = re.search(r"\b([1-5])\b", text)
    return Verdict(float(digit.group(1)) if digit else None, text.strip())


class LocalJudge:
    def __init__(self, model_path: str, precision, batch_size: int = 8):
        from tunesmith.models.load import load_model

        self.model, self.tokenizer = load_model(model_path, precision)
        self.batch_size = batch_size

    def judge(self, rubric: str, items: list[tuple[str, str, str]]) -> list[Verdict]:
        from tunesmith.evaluation.scoring import generate, label_logprobs

        prompts = [judge_messages(rubric, *item) for item in items]
        logprobs = label_logprobs(self.model, self.tokenizer, prompts, SCORES, self.batch_size)
        probs = np.exp(logprobs - logprobs.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        expected = probs @ np.arange(1, 6)
        replies = generate(self.model, self.tokenizer, prompts, max_new_tokens=48, batch_size=self.batch_size)
        return [Verdict(round(float(s), 3), reply) for s, reply in zip(expected, replies, strict=True)]


class EndpointJudge:
    def __init__(self, url: str, model: str, api_key_env: str = "OPENAI_API_KEY", timeout_s: float = 60):
        self.url = url.rstrip("/") + "/chat/completions"
        self.model = model
        self.api_key = os.environ.get(api_key_env, "")
        self.timeout_s = timeout_s

    def judge(self, rubric: str, items: list[tuple[str, str, str]]) -> list[Verdict]:
        import httpx

        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        verdicts = []
        with httpx.Client(timeout=self.timeout_s, headers=headers) as client:
            for item in items:
                body = {"model": self.model, "messages": judge_messages(rubric, *item), "temperature": 0}
                reply = client.post(self.url, json=body)
                reply.raise_for_status()
                verdicts.append(parse_verdict(reply.json()["choices"][0]["message"]["content"]))
        return verdicts


def summarize(verdicts: list[Verdict]) -> dict[str, float]:
    scores = [v.score for v in verdicts if v.score is not None]
    return {"judge_score": float(np.mean(scores)) if scores else float("nan"), "judge_scored": float(len(scores))}
