"""The curation stage: load, reject, deduplicate, split, check for leaks, balance, mix in replay, validate.

Every input row ends up in exactly one place: a split file or rejects.jsonl with its reason, and the
report's counts add up to the rows read.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunesmith.config.schema import DataConfig
from tunesmith.curation.balance import balance
from tunesmith.curation.dedup import DedupResult, dedup_text, exact_dedup, near_dedup, sample_clusters, semantic_dedup
from tunesmith.curation.leakage import remove_leaks
from tunesmith.curation.load import input_files, load_inputs, load_records, load_test_file
from tunesmith.curation.records import LoadResult, Rejected, by_reason, content_id, write_examples, write_jsonl
from tunesmith.curation.replay import mix_replay
from tunesmith.curation.report import render_curation_report
from tunesmith.curation.split import Splits, label_counts, split_problems, stratified_split
from tunesmith.curation.validate import examples_frame, suite_path, validate_frames
from tunesmith.errors import DataError
from tunesmith.formats import get_format
from tunesmith.prompts import full_messages, rejected_messages
from tunesmith.records import CuratedData, Example

REJECT_KINDS_INVALID = {
    "malformed_json", "malformed_row", "undecodable", "not_object", "missing_field", "unexpected_field",
    "wrong_type", "empty_text", "invalid_role", "invalid_role_order", "unknown_label", "too_long", "unsupported_shape",
    "no_shared_prompt", "identical_pair",
}  # fmt: skip


class CurationFailed(DataError):
    """The data cannot be trained on; the problem lists why."""


def count_tokens(examples: list[Example], tokenizer, system: str) -> dict[str, int]:
    """Tokens per example in the chat format the model is trained on, keyed by content id; for a preference pair,
    the longer of its two sides (both are trained on)."""

    def length(messages: list[dict[str, str]]) -> int:
        return len(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"])

    counts: dict[str, int] = {}
    for e in examples:
        key = content_id(e.id)
        if key not in counts:
            counts[key] = length(full_messages(e, system))
            if e.rejected is not None:
                counts[key] = max(counts[key], length(rejected_messages(e, system)))
    return counts


def data_fingerprint(examples: list[Example]) -> str:
    """Content hash of the normalized examples, independent of their order in the file."""
    digest = hashlib.sha256()
    for example_id in sorted(e.id for e in examples):
        digest.update(example_id.encode())
    return digest.hexdigest()[:16]


def derived_max_length(lengths: list[int], context: int | None = None) -> tuple[int, str]:
    """training.max_seq_length from the data: the longest example, unless a few outliers are more than twice
    the 99th percentile (then the percentile, and the outliers are rejected as over-long); rounded up to a
    multiple of 8 (tensor-friendly) and capped at the model's context. Returns the length and why."""
    if not lengths:
        return 8, "no examples"
    ordered = sorted(lengths)
    p99 = ordered[math.ceil(0.99 * len(ordered)) - 1]
    longest = ordered[-1]
    chosen, why = (longest, "the longest example") if longest <= 2 * p99 else (p99, "the 99th percentile")
    length = max(8, -(-chosen // 8) * 8)
    if context and length > context:
        return context, f"the model's context ({context}; the data's {why} is {chosen} tokens)"
    return length, f"{why}, {chosen} tokens (99th percentile {p99}, longest {longest})"


def model_context(tokenizer) -> int | None:
    """The longest sequence the model takes, when the tokenizer knows it (some report a huge sentinel)."""
    limit = getattr(tokenizer, "model_max_length", None)
    return int(limit) if isinstance(limit, int) and 0 < limit < 1_000_000 else None


def _drop_too_long(
    examples: list[Example], tokens: dict[str, int], limit: int, rejects: list[Rejected]
) -> list[Example]:
    kept = []
    for e in examples:
        n = tokens[content_id(e.id)]
        if n > limit:
            reason = f"example is {n} tokens, longer than training.max_seq_length {limit}"
            rejects.append(Rejected(e.source, "too_long", reason, None, dedup_text(e)[:500]))
        else:
            kept.append(e)
    return kept


def _dedup_steps(config: DataConfig):
    near, semantic = config.dedup.near, config.dedup.semantic
    if config.dedup.exact:
        yield exact_dedup
    if near.enabled:
        yield lambda ex: near_dedup(ex, near.threshold, near.num_perm, near.shingle, near.ngram, config.seed)
    if semantic.enabled:
        from tunesmith.models.embeddings import embed

        yield lambda ex: semantic_dedup(
            ex, semantic.threshold, lambda texts: embed(texts, semantic.encoder, semantic.batch_size)
        )


def _record_duplicates(result: DedupResult, rejects: list[Rejected]) -> None:
    for duplicate, kept, similarity in result.removed:
        reason = f"{result.kind} duplicate of {kept.source} (similarity {similarity:.2f})"
        rejects.append(
            Rejected(duplicate.source, f"{result.kind}_duplicate", reason, None, dedup_text(duplicate)[:500])
        )


def _split_parameters(
    config: DataConfig, n_kept: int, max_tokens: int, for_training: bool = True
) -> dict[str, dict[str, Any]]:
    """Suite parameters per frame: what each split may hold. Data too small to train on is checked for what
    prompting needs (valid rows and labels), not for split sizes and per-class counts."""
    base = {"labels": config.labels or [], "max_labels": len(config.labels or []), "min_tokens": config.min_tokens,
            "max_tokens": max_tokens}  # fmt: skip
    if not for_training:
        relaxed = base | {"min_rows": 0, "max_rows": None, "min_per_class": 0}
        return {"curated": relaxed | {"min_rows": 1}, "train": relaxed, "validation": relaxed, "test": relaxed}

    def bounds(fraction: float) -> dict[str, Any]:
        expected = fraction * n_kept
        if fraction == 0:
            return {"min_rows": 0, "max_rows": 0}
        return {"min_rows": max(1, math.floor(0.5 * expected)), "max_rows": math.ceil(1.5 * expected) + 1}

    # A test file is scored as published: any size, and no training length bound (it is never trained on).
    test = (
        base | {"min_rows": 1, "max_rows": None, "max_tokens": None}
        if config.test_path
        else base | bounds(config.split.test)
    )
    return {
        "curated": base | {"min_rows": 1, "max_rows": None, "min_per_class": config.min_examples_per_class},
        "train": base | bounds(config.split.train) | {"max_rows": None, "min_per_class": config.min_examples_per_class},
        "validation": base | bounds(config.split.validation) | {"min_per_class": 0},
        "test": test | {"min_per_class": 0},
    }


@dataclass
class _Work:
    """What the steps of one curation share: every rejected row with its reason, token counts, warnings."""

    config: DataConfig
    tokenizer: Any
    system: str
    pinned: dict[str, str] = field(default_factory=dict)  # example id -> the split an earlier model held it in
    rejects: list[Rejected] = field(default_factory=list)
    tokens: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Deduplicated:
    kept: list[Example]
    removed: dict[str, int]
    clusters: list[dict]
    conflicts: list[list[Example]]


def curate(config: DataConfig, tokenizer, system: str, max_tokens: int | None, out_dir: Path,
           min_train_examples: int = 0, pinned: dict[str, str] | None = None) -> CuratedData:  # fmt: skip
    """Run the curation stage and write its files under out_dir; `system` is the prompt training uses, and
    max_tokens (training.max_seq_length) is derived from the data when None. With fewer than min_train_examples
    unique examples training is off the table: what only training needs (split sizes, examples per class) is
    reported as a warning, and the decision stage answers. `pinned` (id -> split): examples kept in the split of
    the champion a retraining continues."""
    out_dir.mkdir(parents=True, exist_ok=True)
    work = _Work(config, tokenizer, system, dict(pinned or {}))
    loaded = load_inputs(config)
    work.rejects += loaded.rejected
    work.tokens = count_tokens(loaded.examples, tokenizer, system)
    # The task's rows are kept by the task's own length limit, so that its splits (and the test examples every
    # comparison is paired on) are the same with replay on or off; training's limit then makes room for replay.
    task_limit, length_source = _max_length(max_tokens, work.tokens, tokenizer)
    replay = _load_replay(work)
    examples = _drop_too_long(loaded.examples, work.tokens, task_limit, work.rejects)
    max_tokens, length_source = _room_for_replay(max_tokens, task_limit, length_source, replay, work)
    invalid = len(work.rejects)
    test_file = _test_file(work)
    unique = _deduplicate(work, examples)
    for_training, unsplittable = _readiness(work, unique.kept, min_train_examples)
    splits, split_before, leaked = _split(work, unique.kept, test_file)
    balanced = _balance(work, splits)
    replay_counts = _replay(work, splits, replay, max_tokens)
    if unique.conflicts:
        work.warnings.append(
            f"{len(unique.conflicts)} pair(s) of (near-)identical inputs carry different labels: label noise to "
            "resolve by hand (see conflicts.json)"
        )
    report = _validate(work, unique.kept, splits, max_tokens, for_training, out_dir)
    counts = {
        "read": loaded.read,
        "rejected_invalid": invalid,
        **_test_file_counts(test_file),
        "exact_duplicates": unique.removed.get("exact", 0),
        "near_duplicates": unique.removed.get("near", 0),
        "semantic_duplicates": unique.removed.get("semantic", 0),
        "label_conflicts": len(unique.conflicts),
        "kept_unique": len(unique.kept),
        **({"kept_in_earlier_split": sum(e.id in work.pinned for e in unique.kept)} if work.pinned else {}),
        **{f"split_{k}": v for k, v in split_before.items()},
        "leakage_removed": leaked,
        "balancing_dropped": len(balanced.dropped),
        "oversampled_copies": balanced.added,
        **replay_counts,
        "train_from_input": sum(1 for e in splits.train if e.origin == "task" and "~" not in e.id),
        **splits.sizes(),
    }
    hashed = unique.kept + splits.test if test_file is not None else unique.kept
    data = _write(work, out_dir, splits, unique, balanced, report, counts, hashed)
    data.max_seq_length, data.max_seq_length_source = max_tokens, length_source
    data.ignored_fields = dict(sorted(loaded.ignored_fields.items()))
    data.problems = _problems(
        config, counts, report, [r for r in work.rejects if r.kind in REJECT_KINDS_INVALID], unsplittable
    )
    Path(data.report_path).write_text(render_curation_report(data), encoding="utf-8")
    (out_dir / "curation_report.json").write_text(json.dumps(data.to_json(), indent=2), encoding="utf-8")
    return data


def _max_length(max_tokens: int | None, tokens: dict[str, int], tokenizer) -> tuple[int, str]:
    if max_tokens is not None:
        return max_tokens, "set in the config"
    derived, why = derived_max_length(list(tokens.values()), model_context(tokenizer))
    return derived, f"derived from the data: {why}"


def _room_for_replay(
    configured: int | None, task_limit: int, source: str, replay: LoadResult | None, work: _Work
) -> tuple[int, str]:
    """training.max_seq_length: the task's limit, or, when derived and replay is on, long enough for the replay
    rows by the same rule (their outliers are dropped from replay, not the task's rows)."""
    if configured is not None or replay is None or not replay.examples:
        return task_limit, source
    lengths = [work.tokens[content_id(e.id)] for e in replay.examples]
    needed, _ = derived_max_length(lengths, model_context(work.tokenizer))
    if needed <= task_limit:
        return task_limit, source
    return needed, f"{source}; {needed} to fit the replay rows (the task's rows were kept by its own {task_limit})"


def _test_file(work: _Work) -> tuple[LoadResult, DedupResult] | None:
    test_file = _load_test_file(work.config)
    if test_file is not None:
        test_rows, test_repeats = test_file
        work.rejects += test_rows.rejected
        _record_duplicates(test_repeats, work.rejects)
        work.tokens.update(count_tokens(test_repeats.kept, work.tokenizer, work.system))
    return test_file


def _test_file_counts(test_file: tuple[LoadResult, DedupResult] | None) -> dict[str, int]:
    if test_file is None:
        return {}
    rows, repeats = test_file
    return {"test_file_read": rows.read, "test_file_rejected": len(rows.rejected),
            "test_file_repeats": len(repeats.removed)}  # fmt: skip


def _deduplicate(work: _Work, examples: list[Example]) -> _Deduplicated:
    found = _Deduplicated(examples, {}, [], [])
    for step in _dedup_steps(work.config):
        result = step(found.kept)
        _record_duplicates(result, work.rejects)
        found.removed[result.kind] = len(result.removed)
        found.clusters += sample_clusters(result, work.config.dedup.sample_clusters)
        found.conflicts += result.conflicts
        found.kept = result.kept
    return found


def _readiness(work: _Work, kept: list[Example], min_train_examples: int) -> tuple[bool, list[str]]:
    """Whether the data is for training, and why it cannot be split when it is; too little data for training is a
    warning (the decision stage recommends a prompt), not a problem."""
    config = work.config
    for_training = len(kept) >= min_train_examples
    unsplittable = split_problems(
        kept, config.labels, config.split.validation, config.split.test, config.min_examples_per_class
    )
    if not for_training and kept:
        work.warnings.append(
            f"{len(kept)} examples, under the {min_train_examples} fine-tuning needs "
            "(decision.min_examples_finetune): the training-readiness checks (split sizes, examples per class) "
            "were skipped; the decision stage recommends a prompt"
            + ("; " + "; ".join(p.splitlines()[0] for p in unsplittable) if unsplittable else "")
        )
        unsplittable = []
    return for_training, unsplittable


def _split(work: _Work, kept: list[Example], test_file) -> tuple[Splits, dict[str, int], int]:
    """Stratified splits (the test file as the test split where one is given) and the leaks removed from the
    splits that are trained on or tuned with."""
    config = work.config
    # with a test file the test split is that file: an example pinned to test is split as a new one
    pins = {i: split for i, split in work.pinned.items() if split != "test" or test_file is None}
    splits = stratified_split([e for e in kept if e.id not in pins], config.split.validation, config.split.test,
                              config.seed)  # fmt: skip
    for example in kept:
        if example.id in pins:
            getattr(splits, pins[example.id]).append(example)
    if test_file is not None:
        splits.test = test_file[1].kept  # the test file replaces the (empty) test split
    before = splits.sizes()
    if not (config.leakage_check and (splits.validation or splits.test)):
        return splits, before, 0
    splits.train = _without_leaks(config, splits.train, splits.validation + splits.test, "training", work.rejects)
    if test_file is not None:
        # The validation split is carved from data.path, so it may hold copies of the test file's rows.
        splits.validation = _without_leaks(config, splits.validation, splits.test, "validation", work.rejects)
    leaked = before["train"] + before["validation"] - len(splits.train) - len(splits.validation)
    return splits, before, leaked


def _balance(work: _Work, splits: Splits):
    config = work.config
    balanced = balance(
        splits.train, config.balance.strategy, config.balance.cap_ratio, config.balance.warn_ratio, config.seed
    )
    for example in balanced.dropped:
        what = f"class '{example.group}'" if example.labels is None else f"labels {', '.join(example.labels)} all"
        reason = f"dropped by balancing: {what} capped at {config.balance.cap_ratio:g}x the smallest class"
        work.rejects.append(Rejected(example.source, "balancing", reason, None, dedup_text(example)[:500]))
    splits.train = balanced.examples
    work.warnings += balanced.warnings
    return balanced


def _load_replay(work: _Work) -> LoadResult | None:
    """The replay rows, when replay is on; their lengths join the task's in work.tokens, so that a derived
    max_seq_length makes room for them."""
    replay = work.config.replay
    if replay.fraction <= 0:
        return None
    if get_format(work.config.format).task_type == "preference":
        # Replay rows are demonstrations, not pairs: a preference objective cannot train on them. What keeps a
        # preference-tuned model near its base is the objective's own pull toward the reference (DPO's beta).
        work.warnings.append(f"data.replay ({replay.fraction:.0%}) is for supervised training: not mixed into "
                             "preference pairs")  # fmt: skip
        return None
    loaded = load_records(replay.path, replay.format, None, replay.file_format, origin="replay")
    work.tokens.update(count_tokens(loaded.examples, work.tokenizer, work.system))
    return loaded


def _replay(work: _Work, splits: Splits, replay: LoadResult | None, max_tokens: int) -> dict[str, int]:
    if replay is None:
        return {"replay_read": 0, "replay_rejected": 0, "replay_added": 0}
    usable = [e for e in replay.examples if work.tokens[content_id(e.id)] <= max_tokens]
    rejected = replay.read - len(usable)
    mix = mix_replay(splits.train, usable, work.config.replay.fraction, work.config.seed)
    splits.train = mix.train
    work.warnings += mix.warnings
    if rejected:
        work.warnings.append(f"{rejected} of {replay.read} replay rows were unusable (invalid or too long)")
    return {"replay_read": replay.read, "replay_rejected": rejected, "replay_added": mix.added}


def _validate(work: _Work, kept: list[Example], splits: Splits, max_tokens: int, for_training: bool, out_dir: Path):
    """The format's Great Expectations suite on the curated rows and on each split, each with its own bounds."""
    parameters = _split_parameters(work.config, len(kept), max_tokens, for_training)
    # Replay rows are general-domain data in their own format (no label, their own lengths): the task's suite
    # checks the task's rows; load_records checked the replay rows against the replay format.
    task_train = [e for e in splits.train if e.origin == "task"]
    frames = [kept, task_train, splits.validation, splits.test]
    report = validate_frames(
        {name: (examples_frame(frame, work.tokens), params)
         for (name, params), frame in zip(parameters.items(), frames, strict=True)},
        suite_path(work.config.format),
        docs_dir=out_dir / "gx_data_docs",
    )  # fmt: skip
    (out_dir / "gx_validation.json").write_text(json.dumps(report.results, indent=2, default=str), encoding="utf-8")
    return report


def _write(work: _Work, out_dir: Path, splits: Splits, unique: _Deduplicated, balanced, report, counts, hashed):
    """The split files, rejects, duplicate clusters and label conflicts, and the record of them."""
    config = work.config
    paths = {name: write_examples(part, out_dir / f"{name}.jsonl") for name, part in vars(splits).items()}
    rejects_path = write_jsonl([r.to_json() for r in work.rejects], out_dir / "rejects.jsonl")
    clusters_path = out_dir / "dedup_clusters.json"
    clusters_path.write_text(json.dumps(unique.clusters, indent=2, ensure_ascii=False), encoding="utf-8")
    conflicts = [[{"source": e.source, "label": e.target, "text": dedup_text(e)} for e in pair]
                 for pair in unique.conflicts]  # fmt: skip
    (out_dir / "conflicts.json").write_text(json.dumps(conflicts, indent=2, ensure_ascii=False), encoding="utf-8")
    return CuratedData(
        task_type=get_format(config.format).task_type,
        data_format=config.format,
        labels=config.labels,
        train_path=str(paths["train"]),
        validation_path=str(paths["validation"]),
        test_path=str(paths["test"]),
        rejects_path=str(rejects_path),
        report_path=str(out_dir / "curation_report.md"),
        data_hash=data_fingerprint(hashed),
        counts=counts,
        rejected_by_kind=dict(sorted(Counter(r.kind for r in work.rejects).items())),
        class_counts={
            name: dict(sorted(label_counts([e for e in part if e.origin == "task"]).items()))
            for name, part in vars(splits).items()
        },
        balance={
            "strategy": balanced.strategy,
            "before": balanced.before,
            "after": balanced.after,
            "imbalance_ratio": round(balanced.imbalance_ratio, 3),
        },  # fmt: skip
        validation={"success": report.success, "failures": report.failures, "summary": report.summary()},
        token_stats=_token_stats([work.tokens[content_id(e.id)] for e in unique.kept]),
        docs_dir=report.docs_dir,
        clusters_path=str(clusters_path),
        warnings=work.warnings,
    )


def _without_leaks(
    config: DataConfig, examples: list[Example], held_out: list[Example], what: str, rejects: list[Rejected]
) -> list[Example]:
    near = config.dedup.near
    leak = remove_leaks(examples, held_out, near.threshold, near.num_perm, near.shingle, near.ngram, config.seed)
    for example, match, similarity in leak.removed:
        reason = f"leakage: {what} example matches held-out {match.source} (similarity {similarity:.2f})"
        rejects.append(Rejected(example.source, "leakage", reason, None, dedup_text(example)[:500]))
    return leak.train


def _load_test_file(config: DataConfig) -> tuple[LoadResult, DedupResult] | None:
    """The rows of data.test_path (each kept or rejected with its reason, like data.path's) and its exact repeats.
    Nothing else is removed: a published test set is scored as it is, near duplicates and long rows included."""
    if config.test_path is None:
        return None
    loaded = load_test_file(config)
    return loaded, exact_dedup(loaded.examples)


def _token_stats(counts: list[int]) -> dict[str, float]:
    if not counts:
        return {"max": 0, "mean": 0.0, "p95": 0}
    ordered = sorted(counts)
    return {"max": ordered[-1], "mean": sum(ordered) / len(ordered), "p95": ordered[int(0.95 * (len(ordered) - 1))]}


def _problems(
    config: DataConfig, counts: dict[str, int], report, invalid: list[Rejected], unsplittable: list[str]
) -> list[str]:
    problems = []
    limit = config.max_rejected_fraction
    if counts["read"] == 0:
        files = ", ".join(str(p) for p in input_files(config.path, config.incoming))
        problems.append(f"no rows to curate: {files} holds no data (add examples, or point data.path at your data)")
    elif counts["rejected_invalid"] / counts["read"] > limit:
        reasons = by_reason(invalid)
        shown = "\n    ".join(reasons[:5]) + (f"\n    ... {len(reasons) - 5} more reasons" if len(reasons) > 5 else "")
        problems.append(
            f"{counts['rejected_invalid']} of {counts['read']} rows rejected "
            f"({counts['rejected_invalid'] / counts['read']:.1%}), over the data.max_rejected_fraction limit of "
            f"{limit:.0%}:\n    {shown}"
        )
    if config.test_path is not None:
        read, rejected = counts["test_file_read"], counts["test_file_rejected"]
        if read == rejected + counts["test_file_repeats"]:
            problems.append(f"no usable test rows: data.test_path {config.test_path} holds {read} row(s), "
                            f"{rejected} rejected (see rejects.jsonl)")  # fmt: skip
        elif rejected / read > limit:
            problems.append(
                f"{rejected} of {read} rows of data.test_path {config.test_path} rejected ({rejected / read:.1%}), "
                f"over the data.max_rejected_fraction limit of {limit:.0%} (see rejects.jsonl)"
            )
    problems += unsplittable
    if not report.success and counts["kept_unique"]:  # with no rows at all, every expectation fails for that reason
        problems.append("Great Expectations validation failed:\n" + report.summary())
    return problems


def gate(data: CuratedData) -> None:
    """Raise CurationFailed, naming the reports to read, when curation found the data unusable."""
    if data.ok:
        return
    folder = Path(data.report_path).parent
    raise CurationFailed(
        "the data did not pass curation:\n" + "\n".join(f"- {p}" for p in data.problems),
        f"data.path; the report and every rejected row with its reason: {folder / 'curation_report.md'}, "
        f"{folder / 'rejects.jsonl'}",
        "change what each problem names and run again; `tunesmith check CONFIG` tests data the same way without a run",
    )
