"""An OpenAI-compatible chat endpoint over a Predictor (`tunesmith serve`): /v1/models, /v1/chat/completions.

The request's "model" picks an adapter when several are loaded; any other name means the default.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from pydantic import BaseModel

from tunesmith.serving.predict import Predictor, Request


class ChatRequest(BaseModel):
    model: str = ""
    messages: list[dict[str, str]]
    max_tokens: int | None = None
    temperature: float | None = None  # accepted for compatibility; replies are greedy


def create_app(predictor: Predictor, served_name: str = "tunesmith"):
    from fastapi import FastAPI, HTTPException

    app = FastAPI(title="Tunesmith")
    lock = threading.Lock()  # one generation at a time: the model is not shared across threads

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        names = [served_name] + [name for name in predictor.systems if name != "base"]
        return {"object": "list", "data": [{"id": name, "object": "model", "owned_by": "tunesmith"} for name in names]}

    @app.post("/v1/chat/completions")
    def chat(request: ChatRequest) -> dict[str, Any]:
        adapter = request.model if request.model in predictor.systems else None
        try:
            with lock:
                (row,) = predictor.predict(
                    [Request(request.messages, adapter)], max_new_tokens=request.max_tokens or 256
                )
        except ValueError as err:
            raise HTTPException(status_code=400, detail=str(err)) from err
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.model or served_name,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": row["output"]}, "finish_reason": "stop"}
                # a classifier's reply is one of its labels; its probability rides along
                | ({"probability": row["probability"]} if "probability" in row else {})
                | ({"labels": row["labels"]} if "labels" in row else {})  # a multi-label one's set
            ],
        }

    return app
