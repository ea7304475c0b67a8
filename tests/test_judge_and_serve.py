"""LLM-as-judge with a local model and through a real OpenAI-compatible endpoint (`tunesmith serve`)."""

import socket
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest

from tests.test_training import CPU32
from tunesmith.evaluation.judge import SCORES, EndpointJudge, LocalJudge, judge_messages, parse_verdict
from tunesmith.evaluation.scoring import label_logprobs
from tunesmith.serving.predict import Predictor, Request

ITEMS = [("What is the capital of France?", "Paris", "Paris"), ("What is the capital of France?", "Paris", "Banana")]


def test_local_judge_score_is_the_expected_grade_under_the_judges_probabilities(tiny_model):
    judge = LocalJudge(str(tiny_model), CPU32)
    verdicts = judge.judge("Check the city.", ITEMS)
    logprobs = label_logprobs(
        judge.model, judge.tokenizer, [judge_messages("Check the city.", *i) for i in ITEMS], SCORES
    )
    probs = np.exp(logprobs) / np.exp(logprobs).sum(axis=1, keepdims=True)
    assert [v.score for v in verdicts] == pytest.approx(list(probs @ np.arange(1, 6)), abs=1e-3)
    assert all(isinstance(v.rationale, str) for v in verdicts)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(tiny_model):
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tunesmith.flows.cli", "serve", "--model", str(tiny_model), "--port", str(port)]
    )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 120
    while True:
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert server.poll() is None and time.time() < deadline, "tunesmith serve did not start"
        time.sleep(0.5)
    yield url
    server.terminate()
    server.wait(timeout=30)


@pytest.mark.e2e
def test_endpoint_judge_talks_to_an_openai_compatible_server(served, tiny_model):
    assert httpx.get(f"{served}/models").json()["data"][0]["id"] == "tunesmith"
    verdicts = EndpointJudge(served, "tunesmith").judge("Check the city.", ITEMS)
    local = Predictor(str(tiny_model))  # the same automatic precision the server chose
    expected = [
        local.predict([Request(judge_messages("Check the city.", *item))], max_new_tokens=256)[0]["output"]
        for item in ITEMS
    ]
    assert [v.rationale for v in verdicts] == [parse_verdict(text).rationale for text in expected]
    reply = httpx.post(
        f"{served}/chat/completions", json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    )
    body = reply.json()
    assert reply.status_code == 200 and body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["role"] == "assistant"
