"""The forgetting stage as plain functions: general-capability scores before training (cached per base model),
the same suite after, and the one place the change between them is computed (the pipeline's forgetting stage and
the comparison's per-method assessment both call run_forgetting)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tunesmith.config import RunConfig
from tunesmith.config.schema import ForgettingConfig, tier_benchmarks
from tunesmith.forgetting.base_scores import cached_scores, model_content_hash, save_scores, scores_key
from tunesmith.forgetting.benchmarks import choose_suite, in_process_lm, lm_eval_batch_size, run_benchmarks, served_lm
from tunesmith.forgetting.chance import check_chance
from tunesmith.forgetting.compare import compare_scores
from tunesmith.forgetting.verdict import plan_suite
from tunesmith.forgetting.vllm_server import ServedModel, choose_backend, max_model_len, served_trained, vllm_server
from tunesmith.models.load import load_model
from tunesmith.records import ForgettingReport, Precision, PreparedModel, TrainedModel
from tunesmith.training.inference import load_trained, write_merged


@dataclass(frozen=True)
class Scorable:
    """A model the benchmarks can score: `load` it here for lm-eval's HF backend, or have vLLM load what `served`
    describes. Both are called only when that backend scores it."""

    load: Callable[[], tuple[Any, Any]]
    served: Callable[[], ServedModel]
    tokenizer: str  # its tokenizer's folder: lm-eval tokenizes the requests it sends to vLLM
    precision: Precision


def base_scorable(model: PreparedModel) -> Scorable:
    return Scorable(
        lambda: load_model(model.path, model.precision, model.trust_remote_code),
        lambda: ServedModel(model.path),
        model.path,
        model.precision,
    )


def trained_scorable(
    model: PreparedModel, trained: TrainedModel, work_dir: Path, lora: bool = False, loaded=None
) -> Scorable:
    """`loaded`: (model, tokenizer) already in memory, used by the HF backend instead of loading again."""

    trust = model.trust_remote_code

    def load():
        return loaded or load_trained(model.path, trained.method, trained.output_dir, model.precision, trust)

    def merge() -> str:
        return write_merged(model.path, trained.method, trained.output_dir, work_dir / "merged", trust)

    return Scorable(load, lambda: served_trained(model.path, trained, merge, lora), model.path, model.precision)


@dataclass
class ForgettingResult:
    """After-training scores and their comparison with the baseline."""

    report: ForgettingReport
    before: dict[str, dict[str, Any]]
    after: dict[str, dict[str, Any]]
    reused: bool = False  # the trained model's scores were kept from an earlier run of the same training

    def headline(self) -> str:
        return self.report.headline()

    def summary_metrics(self) -> dict[str, float]:
        """What the comparison tables per method: the mean relative change (%), the pooled change in points with its
        interval, the flag, each accuracy after."""
        changes = [row["relative_change"] for row in self.report.per_benchmark.values()]
        pooled = self.report.pooled
        return {
            "forgetting_change_pct": 100 * sum(changes) / len(changes) if changes else 0.0,
            "forgetting_change_points": 100 * pooled["difference"],
            "forgetting_change_low_points": 100 * pooled["low"],
            "forgetting_change_high_points": 100 * pooled["high"],
            "forgetting_flag": float(self.report.forgetting),
            **{f"forgetting_{name}_acc": row["after"] for name, row in self.report.per_benchmark.items()},
        }


def _score(config: RunConfig, target: Scorable, suite: dict[str, Any], work_dir: Path) -> dict[str, dict[str, Any]]:
    f = config.forgetting
    if suite["backend"] == "vllm":
        served = target.served()
        log = work_dir / "vllm-server.log"
        with vllm_server(suite["command"], served, target.precision.dtype, f.seed, f.vllm, log) as url:
            lm = served_lm(url, served.name, target.tokenizer, max_model_len(served.path), f.vllm.concurrent)
            return run_benchmarks(lm, suite["benchmarks"], work_dir, f.limit, f.seed, suite["harness"])
    model, tokenizer = target.load()
    lm = in_process_lm(model, tokenizer, suite["batch_size"])
    return run_benchmarks(lm, suite["benchmarks"], work_dir, f.limit, f.seed, suite["harness"])


def base_scores_cache(config: RunConfig) -> Path:
    return Path(config.output_dir).resolve() / "cache" / "forgetting"


def run_forgetting_baseline(
    config: RunConfig, model: PreparedModel, base: Scorable, work_dir: Path, run_id: str, methods: Iterable[str] = ()
) -> dict[str, Any]:
    """The base model's scores, fixing the suite and the backend for the after-training runs of `methods`. Scores
    computed before for the same model content, benchmark files, lm-eval version, backend and settings are reused
    (unless orchestration.cache is off): `cached_from` names the run that computed them.

    forgetting.tier auto starts with the standard tier and moves to the large one when the standard questions
    cannot resolve the threshold at the accuracy the base model just showed on them. Benchmarks the base model
    answers at chance are left out of the gate (`leave_out_at_chance`)."""
    f, device = config.forgetting, model.precision.device
    local, harness, why = choose_suite(f, device)
    backend = choose_backend(f, device, methods)
    suite = {"local": [b.name for b in local], "harness": harness, "why": why, "benchmarks": local,
             "batch_size": lm_eval_batch_size(f, device), "backend": backend.name, "backend_why": backend.why,
             "command": list(backend.command)}  # fmt: skip
    before = leave_out_at_chance(f, _base_scores(config, model, base, suite, work_dir, run_id))
    why = why_larger(f, harness, before["scores"])
    if why is None:
        return before
    large = tier_benchmarks("large")
    suite = suite | {"local": [b.name for b in large], "benchmarks": large, "why": why}
    return leave_out_at_chance(f, _base_scores(config, model, base, suite, work_dir, run_id))


def leave_out_at_chance(settings: ForgettingConfig, before: dict[str, Any]) -> dict[str, Any]:
    """`before` gating only on the benchmarks its base model answers better than chance (forgetting/chance.py);
    the others are listed in `suite["at_chance"]` and in `suite["why"]`. lm-eval's own tasks (no file to read
    the choices from) are always gated on. When every benchmark is at chance none is left out, since no subset is
    better evidence than another, and `why` says so."""
    suite, scores = before["suite"], before["scores"]
    checks = [check_chance(b.name, b.path, scores[b.name]["correct"]) for b in suite["benchmarks"]
              if settings.leave_out_at_chance and scores[b.name]["correct"]]  # fmt: skip
    out = [c for c in checks if not c.above]
    everything = bool(out) and len(out) == len(suite["benchmarks"]) and not suite["harness"]
    if not out or everything:
        why = "; the base model answers every benchmark at chance: all are gated on" if everything else ""
        return before | {"suite": suite | {"at_chance": [], "why": suite["why"] + why}}
    names = {c.name for c in out}
    kept = [b for b in suite["benchmarks"] if b.name not in names]
    why = f"{suite['why']}; left out, answered at chance by the base model: " + "; ".join(c.text() for c in out)
    suite = suite | {"benchmarks": kept, "local": [b.name for b in kept], "why": why,
                     "at_chance": [c.to_json() for c in out]}  # fmt: skip
    # The trained model's kept scores (run_forgetting) are named by the key: a gate on other benchmarks needs its own.
    key = hashlib.sha256(f"{before['key']}-{','.join(sorted(names))}".encode()).hexdigest()[:16]
    return before | {"suite": suite, "scores": {n: s for n, s in scores.items() if n not in names}, "key": key}


def why_larger(settings: ForgettingConfig, harness: list[str], scores: dict[str, Any]) -> str | None:
    """Why forgetting.tier auto moves from the standard tier (scored in `scores`) to the large one, or None when
    it stays: the standard questions resolve the threshold at the base model's accuracy, or the suite is not the
    auto one (your benchmarks, lm-eval's tasks, a tier asked for) or `limit` sets its size."""
    if settings.tier != "auto" or settings.benchmarks is not None or harness or settings.limit is not None:
        return None
    plan = plan_suite(scores, settings.threshold)
    if plan.resolves:
        return None
    return (f"large: bundled benchmarks (forgetting.tier auto: the standard tier's {plan.n} questions detect drops "
            f"of {100 * plan.detectable:.1f} points, more than the threshold of {100 * plan.margin:.1f} points at the "
            f"base model's accuracy {plan.accuracy:.3f})")  # fmt: skip


def _base_scores(
    config: RunConfig, model: PreparedModel, base: Scorable, suite: dict[str, Any], work_dir: Path, run_id: str
) -> dict[str, Any]:
    f, local = config.forgetting, suite["benchmarks"]
    cache = base_scores_cache(config)
    key = scores_key(
        model_content_hash(model.path, cache), asdict(model.precision), suite, {b.name: str(b.path) for b in local},
        f.limit, f.seed,
    )  # fmt: skip
    hit = cached_scores(cache, key) if config.orchestration.cache else None
    if hit is not None:
        return {"suite": suite, "scores": hit["scores"], "cached_from": hit["run_id"], "key": key}
    scores = _score(config, base, suite, work_dir)
    save_scores(cache, key, scores, run_id)
    return {"suite": suite, "scores": scores, "cached_from": None, "key": key}


def run_forgetting(
    config: RunConfig, tuned: Scorable, before: dict[str, Any], work_dir: Path, keep_in: str | None = None
) -> ForgettingResult:
    """The same benchmarks, limit, seed and backend on a trained model, compared with the baseline. `keep_in`: the
    trained model's own record folder (training/stage.py), where its scores are kept per suite, so that a rerun
    that reuses the training (a retry, a mitigation attempt run again) reuses them too."""
    kept = Path(keep_in) / f"forgetting-{before['key'][:16]}.json" if keep_in and config.orchestration.cache else None
    reused = kept is not None and kept.is_file()
    if reused:
        after = json.loads(kept.read_text(encoding="utf-8"))
    else:
        after = _score(config, tuned, before["suite"], work_dir)
        if kept is not None:
            kept.write_text(json.dumps(after), encoding="utf-8")
    report = compare_scores(before["scores"], after, config.forgetting.threshold)
    if before["suite"].get("at_chance"):
        report.notes.append(
            "Left out of the verdict, answered at chance by the base model (nothing there to lose; guesses that "
            "flip would only widen the interval): " + "; ".join(c["text"] for c in before["suite"]["at_chance"]) + "."
        )
    return ForgettingResult(report, before["scores"], after, reused)
