"""Answer prompts with a trained model, batched; several PEFT adapters can share one base model.

Requests are grouped by adapter and each group is generated as one batch with that adapter switched on,
as multi-tenant adapter serving does.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunesmith.models.hardware import choose_precision
from tunesmith.models.manifest import read_manifest
from tunesmith.models.resolve import default_model_cache
from tunesmith.training.methods import METHODS

BASE = "base"  # the adapter name that means "no adapter"


@dataclass
class Request:
    messages: list[dict[str, str]]
    adapter: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


def local_path(model: str) -> Path:
    """A local folder for a path, an embedded model name, or an MLflow URI (models:/..., runs:/...)."""
    if is_mlflow_uri(model):
        from tunesmith.serving.package import trained_folder
        from tunesmith.tracking.registry import download_model
        from tunesmith.tracking.uri import tracking_uri

        return trained_folder(download_model(model, tracking_uri(None)))
    from tunesmith.models.embedded import EMBEDDED_MODELS
    from tunesmith.models.resolve import resolve_model

    if model in EMBEDDED_MODELS:
        return Path(resolve_model(model, default_model_cache()))
    path = Path(model).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"--model {model}: no such folder, embedded model or MLflow URI")
    return path


def is_mlflow_uri(model: str) -> bool:
    return model.startswith(("models:/", "runs:/", "mlflow-artifacts:/"))


def load_predictor(model: str, adapters: dict[str, str] | None = None) -> Predictor:
    """A Predictor for a folder, an embedded model name, or a registered model: a `models:/` or `runs:/` URI is
    loaded by MLflow's own loader, as `mlflow.pyfunc.load_model` and `mlflow models serve` load it."""
    if adapters or not is_mlflow_uri(model):
        return Predictor(model, adapters)
    import mlflow.pyfunc

    from tunesmith.tracking.registry import download_model
    from tunesmith.tracking.uri import tracking_uri

    local = download_model(model, tracking_uri(None))
    if not (local / "MLmodel").is_file():  # registered before models were logged as MLflow models
        return Predictor(str(local))
    return mlflow.pyfunc.load_model(str(local)).unwrap_python_model().predictor


def read_requests(lines: Iterable[str]) -> Iterator[Request]:
    """Plain text lines are prompts; JSON lines may carry "prompt" or "messages", and "adapter"."""
    for line in lines:
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = line.rstrip("\n")
        if isinstance(row, dict):
            messages = row.get("messages") or [{"role": "user", "content": str(row.get("prompt", ""))}]
            yield Request(messages, row.get("adapter"), row)
        else:
            yield Request([{"role": "user", "content": str(row)}], None, {"prompt": str(row)})


class Predictor:
    """One base model with zero or more named adapters, or one self-contained trained model."""

    def __init__(self, model: str, adapters: dict[str, str] | None = None, precision: str = "auto"):
        self.precision = choose_precision(precision)
        folder = local_path(model)
        info = read_manifest(folder)
        self.systems: dict[str, str] = {}
        # A model fine-tuned on classification data answers with one of its labels, chosen as evaluation
        # scores them (the most likely label as the whole reply), with that reply's probability.
        # A multi-label one answers with its label set, each label with its probability.
        self.labels: dict[str, list[str] | None] = {}
        self.multilabel: dict[str, bool] = {}
        if adapters:
            self.model, self.tokenizer = self._with_adapters(folder, info, adapters)
        elif info.get("method") and info["method"] != "merged":
            from tunesmith.training.inference import load_trained

            self.model, self.tokenizer = load_trained(info["base_model"], info["method"], str(folder), self.precision)
            self.systems[BASE] = info.get("system", "")
            self._read_labels(BASE, info)
        else:
            from tunesmith.models.load import load_model

            self.model, self.tokenizer = load_model(str(folder), self.precision)
            self.systems[BASE] = info.get("system", "")
            self._read_labels(BASE, info)
        self.default = next(iter(adapters)) if adapters else BASE

    def _read_labels(self, name: str, info: dict) -> None:
        self.labels[name] = info.get("labels")
        self.multilabel[name] = info.get("task_type") == "multilabel"

    def _with_adapters(self, base_folder: Path, base_info: dict, adapters: dict[str, str]):
        from peft import PeftModel

        from tunesmith.models.load import load_model

        base_path = base_info.get("base_model") if base_info.get("method") else str(base_folder)
        base, tokenizer = load_model(base_path, self.precision)
        model = None
        for name, location in adapters.items():
            folder = local_path(location)
            info = read_manifest(folder)
            method = METHODS.get(info.get("method") or "lora")  # a bare PEFT folder has no manifest
            if method is None or not method.peft_adapter:
                raise ValueError(
                    f"--adapter {name}: method {info.get('method')} is not a PEFT adapter; serve it alone with --model"
                )
            self.systems[name] = info.get("system", "")
            self._read_labels(name, info)
            if model is None:
                model = PeftModel.from_pretrained(base, str(folder), adapter_name=name)
            else:
                model.load_adapter(str(folder), adapter_name=name)
        self.systems[BASE] = ""
        model.eval()
        return model, tokenizer

    def predict(self, requests: list[Request], max_new_tokens: int = 64, batch_size: int = 8) -> list[dict[str, Any]]:
        """A reply for every request, in input order: generated text, or for a classifier its label with the
        label's probability."""
        replies: dict[int, dict[str, Any]] = {}
        groups: dict[str, list[int]] = {}
        for i, request in enumerate(requests):
            groups.setdefault(request.adapter or self.default, []).append(i)
        for adapter, indices in groups.items():
            if adapter not in self.systems:
                raise ValueError(f"unknown adapter {adapter!r}; loaded: {', '.join(self.systems)}")
            system = self.systems[adapter]
            prompts = [
                (
                    [{"role": "system", "content": system}]
                    if system and requests[i].messages[0]["role"] != "system"
                    else []
                )
                + requests[i].messages
                for i in indices
            ]
            outputs = self._answer_with(adapter, prompts, max_new_tokens, batch_size)
            replies.update(zip(indices, outputs, strict=True))
        return [
            requests[i].raw | {"adapter": requests[i].adapter or self.default} | replies[i]
            for i in range(len(requests))
        ]

    def _answer_with(self, adapter: str, prompts, max_new_tokens: int, batch_size: int) -> list[dict[str, Any]]:
        if hasattr(self.model, "set_adapter") and hasattr(self.model, "peft_config"):
            if adapter == BASE:
                with self.model.disable_adapter():
                    return self._answer(prompts, None, max_new_tokens, batch_size)
            self.model.set_adapter(adapter)
        labels = self.labels.get(adapter)
        if labels and self.multilabel.get(adapter):
            return self._label_sets(prompts, labels, batch_size)
        return self._answer(prompts, labels, max_new_tokens, batch_size)

    def _label_sets(self, prompts, labels: list[str], batch_size: int) -> list[dict[str, Any]]:
        """The generated label set (as the model was trained to write it) and each label's probability."""
        from tunesmith.evaluation.multilabel import label_probabilities
        from tunesmith.evaluation.scoring import generate
        from tunesmith.formats.multilabel import answer_for, parse_answer

        width = len(self.tokenizer(answer_for(labels, labels), add_special_tokens=False)["input_ids"])
        replies = generate(self.model, self.tokenizer, prompts, width + 4, batch_size)
        sets = [parse_answer(reply, labels)[0] for reply in replies]
        scored = label_probabilities(self.model, self.tokenizer, prompts, sets, labels)
        return [{"output": answer_for(s, labels), "labels": row} for s, row in zip(sets, scored, strict=True)]

    def _answer(self, prompts, labels: list[str] | None, max_new_tokens: int, batch_size: int) -> list[dict[str, Any]]:
        from tunesmith.evaluation.evaluate import CANDIDATES
        from tunesmith.evaluation.scoring import generate, label_logprobs

        if not labels:
            return [
                {"output": text} for text in generate(self.model, self.tokenizer, prompts, max_new_tokens, batch_size)
            ]
        scores = label_logprobs(self.model, self.tokenizer, prompts, labels, batch_size, candidates=CANDIDATES)
        return [
            {"output": labels[int(row.argmax())], "probability": round(math.exp(float(row.max())), 6)} for row in scores
        ]
