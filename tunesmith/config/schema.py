"""The one configuration schema of a Tunesmith run: a pydantic model per section, composed into RunConfig.

Defaults live here; a YAML file states only what differs. Every section forbids unknown keys so a typo
fails at load time with the key's name.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails

from tunesmith.formats import field_names, get_format
from tunesmith.models.embedded import EMBEDDED_MODELS
from tunesmith.models.resolve import default_model_cache
from tunesmith.resources import bundled_data
from tunesmith.search.space import Dimension
from tunesmith.training.distributed.strategies import STRATEGIES, unsupported


def _existing_file(path: Path) -> Path:
    if not path.is_file():
        raise ValueError(f"file '{path}' does not exist")
    return path


def _existing_path(path: Path) -> Path:
    if not path.exists():
        raise ValueError(f"'{path}' does not exist")
    return path


ExistingFile = Annotated[Path, AfterValidator(_existing_file)]
ExistingPath = Annotated[Path, AfterValidator(_existing_path)]  # a file, or a saved `datasets` folder


def _known_format(name: str) -> str:
    get_format(name)  # raises, listing the registered formats
    return name


DataFormat = Annotated[str, AfterValidator(_known_format)]  # a name in the format registry (tunesmith/formats)
FileFormat = Literal["auto", "jsonl", "json", "csv", "parquet", "datasets"]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


def _count_or_auto(value: int | str) -> int | str:
    if isinstance(value, int) and value < 1:
        raise ValueError("must be 'auto' or at least 1")
    return value


CountOrAuto = Annotated[int | Literal["auto"], AfterValidator(_count_or_auto)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SplitConfig(Section):
    train: Fraction = 0.8
    validation: Fraction = 0.1
    test: Fraction = 0.1

    @model_validator(mode="after")
    def _sums_to_one(self) -> SplitConfig:
        total = self.train + self.validation + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + validation + test must be 1.0, got {total:g}")
        return self


class NearDedupConfig(Section):
    enabled: bool = True
    threshold: Fraction = 0.8  # estimated Jaccard similarity of shingle sets
    num_perm: int = Field(128, ge=16)
    shingle: Literal["char", "word"] = "char"
    ngram: int = Field(5, ge=1)


class SemanticDedupConfig(Section):
    enabled: bool = False
    threshold: Fraction = 0.95  # cosine similarity of sentence embeddings
    encoder: str = "all-minilm-l6-v2"
    batch_size: int = Field(64, ge=1)


class DedupConfig(Section):
    exact: bool = True
    near: NearDedupConfig = NearDedupConfig()
    semantic: SemanticDedupConfig = SemanticDedupConfig()
    sample_clusters: int = Field(20, ge=0)


class BalanceConfig(Section):
    strategy: Literal["none", "cap", "oversample"] = "none"
    cap_ratio: float = Field(3.0, ge=1.0)
    warn_ratio: float = Field(10.0, ge=1.0)


class ReplayConfig(Section):
    """General-domain examples mixed into training against forgetting; never evaluated."""

    path: ExistingPath = Field(default_factory=lambda: bundled_data("replay/dolly_open_qa.jsonl"))
    format: DataFormat = "instruction"
    file_format: FileFormat = "auto"
    # On by default, chosen by benchmarks/forgetting_defaults.py (3 seeds of the demo's LoRA, 109 general
    # questions): general accuracy +4.6 to +11.9 points with 10% replay, -0.9 to -8.3 without, -5.5 to -11.9 at
    # half the learning rate; task accuracy 0.950-0.975 with it, 0.875-0.925 without. On clinc150 and alpaca_5k
    # (1,016 questions) no setting forgot and replay left the task score within its interval.
    fraction: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.1


class DataConfig(Section):
    path: ExistingPath
    # New files dropped here are read after data.path every run and deduplicated against it.
    incoming: Path | None = None
    format: DataFormat = "classification"
    file_format: FileFormat = "auto"
    columns: dict[str, str] = {}  # our field name -> the file's column name
    ignore_fields: list[str] = []
    # Fields the format does not read (snips' slots, clinc150's domain, ...): skipped and counted in the curation
    # report ("ignore"), or each row that has one is rejected ("reject").
    unknown_fields: Literal["ignore", "reject"] = "ignore"
    labels: list[str] | None = None
    # A fixed test set (a benchmark's published test split, say), in the same format and columns as data.path:
    # scored as it is, never trained on, with training copies of its examples removed by the leakage check.
    # data.path is then split into train and validation only (train 0.9, validation 0.1 unless split is set).
    test_path: ExistingPath | None = None
    split: SplitConfig = SplitConfig()
    seed: int = 42
    max_rejected_fraction: Fraction = 0.05
    # Lower token bound checked by the Great Expectations suite; the upper one is training.max_seq_length.
    min_tokens: int = 1
    min_examples_per_class: int = Field(5, ge=0)
    dedup: DedupConfig = DedupConfig()
    leakage_check: bool = True
    balance: BalanceConfig = BalanceConfig()
    replay: ReplayConfig = ReplayConfig()

    @model_validator(mode="after")
    def _labels_for_classification(self) -> DataConfig:
        if get_format(self.format).has_labels and not self.labels:
            raise ValueError(f"{self.format} data needs data.labels (the allowed label set)")
        return self

    @model_validator(mode="after")
    def _no_test_split_beside_a_test_file(self) -> DataConfig:
        if self.test_path is None:
            return self
        if "split" not in self.model_fields_set:
            self.split = SplitConfig(train=0.9, validation=0.1, test=0.0)
        elif self.split.test > 0:
            raise ValueError(
                f"data.test_path ({self.test_path}) is the test split, so data.split.test must be 0, got "
                f"{self.split.test:g} (e.g. split: {{train: 0.9, validation: 0.1, test: 0}})"
            )
        return self

    @field_validator("columns")
    @classmethod
    def _known_fields(cls, columns: dict[str, str]) -> dict[str, str]:
        fields = field_names()
        unknown = sorted(set(columns) - fields)
        if unknown:
            raise ValueError(f"keys must be our field names ({', '.join(sorted(fields))}), not: {', '.join(unknown)}")
        return columns


class PromptConfig(Section):
    # What an untrained model is asked with (zero/few-shot baselines, the base model in evaluation); {labels}
    # becomes the label list. None: the data format's default (tunesmith/prompts.py), which for classification
    # lists the labels.
    system: str | None = None
    # What fine-tuning trains with and the fine-tuned model is asked with. None: for classification with the
    # default system prompt, the same instruction without the label list (the model learns its labels, so the
    # prompt does not grow with them); otherwise the system prompt.
    trained_system: str | None = None


class BaselineConfig(Section):
    few_shot_k: int = Field(4, ge=1)
    max_examples: int | None = Field(100, ge=1)  # validation examples scored per baseline
    batch_size: int = Field(8, ge=1)


class RagConfig(Section):
    corpus: ExistingPath | None = None  # a folder of .txt/.md files or a JSONL file of {"text"} rows
    top_k: int = Field(3, ge=1)
    chunk_words: int = Field(120, ge=10)
    retrievers: list[Literal["bm25", "embedding"]] = ["bm25", "embedding"]
    encoder: str = "all-minilm-l6-v2"


class DecisionConfig(Section):
    min_examples_prompting: int = 10
    min_examples_finetune: int = 100
    full_finetune_min_examples: int = 10_000
    rag_margin: float = Field(0.05, ge=0)
    target: float | None = None  # task metric at which a prompt is good enough and training is skipped
    priority: Literal["cost", "quality"] = "cost"
    multi_task: bool = False  # several tasks will share one base model: prefer adapters
    memory_gb: float | None = Field(None, gt=0)  # memory to plan for; default: GPU memory, else free RAM
    memory_headroom: Annotated[float, Field(gt=0.0, le=1.0)] = 0.9
    force: Literal["prompting", "few_shot_prompting", "rag", "finetune"] | None = None
    baselines: BaselineConfig = BaselineConfig()
    rag: RagConfig = RagConfig()


Dtype = Literal["auto", "float32", "bfloat16", "float16"]


def _known_method(name: str) -> str:
    from tunesmith.training.methods import METHODS

    if name not in METHODS:
        raise ValueError(f"unknown method: use one of {', '.join(METHODS)}")
    return name


def _method_or_auto(name: str) -> str:
    try:
        return name if name == "auto" else _known_method(name)
    except ValueError as err:
        raise ValueError(str(err).replace("use one of", "use auto or one of")) from None


MethodName = Annotated[str, AfterValidator(_known_method)]  # a name in the method registry


def _default_comparison() -> list[str]:
    from tunesmith.training.methods import default_comparison

    return default_comparison()


def _details(err: ValidationError, prefix: tuple = ()) -> list[InitErrorDetails]:
    return [
        InitErrorDetails(type=e["type"], loc=(*prefix, *e["loc"]), input=e["input"], ctx=e.get("ctx", {}))
        for e in err.errors()
    ]


Strategy = Literal[tuple(STRATEGIES)]  # type: ignore[valid-type]  # the names declared in strategies.py


class DistributedConfig(Section):
    """Training over several processes (GPUs, or CPU processes with gloo), launched with `accelerate launch`.

    none: the training runs inside the pipeline's own process. ddp replicates the model on every process;
    deepspeed_zero2 shards optimizer states and gradients; fsdp2 and deepspeed_zero3 shard the parameters too.
    """

    strategy: Strategy = "none"
    num_processes: CountOrAuto = "auto"  # per node; auto: every visible GPU
    nnodes: int = Field(1, ge=1)
    node_rank: int = Field(0, ge=0)
    rdzv_endpoint: str | None = None  # host:port of node 0, needed with nnodes > 1
    accelerate_config: ExistingFile | None = None  # the user's own accelerate YAML: it wins over the generated one
    cpu_offload: bool = False  # fsdp2 / deepspeed: keep optimizer states (zero3/fsdp2: parameters too) in CPU RAM
    # For the Kubernetes manifest written with nnodes > 1: the image with Tunesmith installed, and the volume
    # claim that holds output_dir on every node.
    image: str = "tunesmith:latest"
    volume_claim: str = "tunesmith-runs"

    @model_validator(mode="after")
    def _consistent(self) -> DistributedConfig:
        if self.node_rank >= self.nnodes:
            raise ValueError(f"node_rank {self.node_rank} must be below nnodes {self.nnodes}")
        if self.nnodes > 1 and not self.rdzv_endpoint:
            raise ValueError("nnodes > 1 needs rdzv_endpoint (host:port of node 0, reachable from every node)")
        if self.rdzv_endpoint and not re.fullmatch(r"[^:\s]+:\d{1,5}", self.rdzv_endpoint):
            raise ValueError(f"rdzv_endpoint '{self.rdzv_endpoint}' must be host:port")
        if self.strategy == "none" and (self.accelerate_config or self.nnodes > 1):
            raise ValueError("accelerate_config and nnodes need a strategy (ddp, fsdp2, deepspeed_zero2/3)")
        return self

    @property
    def active(self) -> bool:
        return self.strategy != "none"


class SearchConfig(Section):
    """training.search: an Optuna search over the method's hyperparameters before the final training, which then
    uses the best trial's settings (tunesmith/search). trials 0: no search."""

    trials: int = Field(0, ge=0)  # finished trials the study should hold (a resumed study counts earlier ones)
    # metric: the task metric on the validation split. penalized: that metric minus forgetting_penalty x the
    # relative drop on the forgetting benchmarks. pareto: both as objectives; the Pareto front is kept and the
    # best metric among trials within forgetting.threshold is chosen.
    objective: Literal["metric", "penalized", "pareto"] = "metric"
    forgetting_penalty: float = Field(1.0, ge=0)  # metric points lost per unit of relative drop (penalized)
    # Replaces or adds to the method's declared ranges, keyed as under training.: {learning_rate: {low: 1e-5,
    # high: 1e-3, log: true}, lora.r: {choices: [8, 16]}}; a key set to null leaves that setting unsearched.
    space: dict[str, Dimension | None] = {}
    max_steps: int | None = Field(None, ge=1)  # each trial's training length; None: as the method's epochs say
    evaluations: int = Field(4, ge=1)  # validation-loss reports per trial, which the pruner judges
    validation_examples: int | None = Field(200, ge=1)  # validation examples each trial is scored on
    sampler: Literal["tpe", "random"] = "tpe"
    pruner: Literal["median", "hyperband", "none"] = "median"
    startup_trials: int = Field(2, ge=0)  # trials that finish before the pruner starts judging others
    start_with_defaults: bool = True  # the first trial is the method's defaults: the search can only do better
    enqueue: list[dict[str, Any]] = []  # settings tried before sampling starts, e.g. [{learning_rate: 1e-4}]
    # Optuna storage URL shared by the trials; None: a SQLite file in output_dir/search.
    storage: str | None = None
    seed: int = 42


class PreferenceConfig(Section):
    """Preference objectives (training.objective dpo, orpo, kto) on preference pairs."""

    beta: float | None = Field(None, gt=0)  # None: the objective's default (0.1 for each: see training/objectives)
    # DPO and KTO: first supervised fine-tuning on the chosen replies (at the method's supervised rate), then the
    # preference stage continues from that model and takes it as its reference, as the DPO paper does when no
    # supervised model of the data exists. Off: the preference stage starts from the model as it is.
    sft_first: bool = False


class TrainingConfig(Section):
    """Training settings; each method's own section (training.lora, training.qlora, ...) is declared by the method
    itself (tunesmith/training/methods) and validated here by its settings model, defaults included."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    # "auto": the decision stage picks the method from the memory estimate, the data and decision.priority.
    method: Annotated[str, AfterValidator(_method_or_auto)] = "auto"
    # What training optimizes, on top of the method: sft (the answers of demonstrations), or on preference pairs
    # dpo, orpo (one stage, no reference model) or kto (each reply judged alone). auto: dpo for preference
    # data, sft otherwise.
    objective: Literal["auto", "sft", "dpo", "orpo", "kto"] = "auto"
    preference: PreferenceConfig = PreferenceConfig()
    # None means the chosen method's default (see tunesmith/training/methods).
    epochs: float | None = Field(None, gt=0)
    learning_rate: float | None = Field(None, gt=0)
    weight_decay: float | None = Field(None, ge=0)
    # An L2 penalty toward the base model (L2-SP, Li et al. 2018), applied like AdamW's decoupled weight decay but
    # toward where each trainable weight started: after every optimizer step w -= lr * l2_to_base * (w - w_start).
    # A weight the gradient pushes one way every step settles at 1 / l2_to_base of its start's distance; noise that
    # pushes both ways is held closer. 0: off. For methods whose untrained state is the base model (not prefix or
    # prompt tuning) and strategies that do not shard the weights.
    l2_to_base: float = Field(0.0, ge=0)
    max_steps: int = -1
    batch_size: int = Field(8, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    # When set, gradient accumulation is derived from it: ceil(effective_batch_size / batch_size).
    effective_batch_size: int | None = Field(None, ge=1)
    # None: derived from the data at curation (every example fits unless a few are more than twice the 99th
    # percentile of the tokenized lengths; capped at the model's context) and reported.
    max_seq_length: int | None = Field(None, ge=8)
    warmup_ratio: Fraction = 0.1
    lr_scheduler: str = "cosine"
    logging_steps: int = Field(5, ge=1)
    seed: int = 42
    precision: Dtype = "auto"
    # Off by default: it recomputes the forward pass (about a third more compute). The decision stage turns it on
    # when the memory estimate says the method only fits with it (the record's plan).
    gradient_checkpointing: bool = False
    # Speed switches (tunesmith/training/fast_path.py); auto: on where they help and are installed (a GPU).
    attention: Literal["auto", "sdpa", "eager", "flex_attention", "flash_attention_2", "flash_attention_3"] = "auto"
    padding_free: bool | Literal["auto"] = "auto"  # one flattened sequence per batch, no padding
    # Micro-batches sized in tokens: supervised examples packed, without padding, into one sequence of at most this
    # many tokens, each attending only to itself (tunesmith/training/packing.py); batch_size and accumulation then
    # only set the effective batch. auto: on a GPU, as much of the effective batch as the memory estimate fits in
    # one micro-batch; off on a CPU (benchmarks/training_throughput.py measures both). off: batches of examples.
    tokens_per_batch: Annotated[int, Field(ge=64)] | Literal["auto", "off"] = "auto"
    # torch.compile of the model. auto: on CUDA GPUs (fewer kernel launches); off on a CPU, where compiling costs
    # more than the few steps of a CPU training win back.
    compile: bool | Literal["auto"] = "auto"
    fused_optimizer: bool | Literal["auto"] = "auto"  # torch's fused AdamW kernel
    # Liger's RMSNorm, RoPE and SwiGLU kernels. Its fused linear cross-entropy is not used: TRL's trainers refuse it
    # and project through their own fused LM head (labelled positions only, in tiles, never the whole logits).
    liger: bool | Literal["auto"] = "auto"
    # Base weights an adapter method does not train: in the compute dtype (bf16 on a GPU: half the memory, no
    # per-step casts) or float32. auto: the compute dtype on a GPU.
    frozen_weights: Literal["auto", "float32", "compute"] = "auto"
    loss_on: Literal["assistant", "all"] = "assistant"  # assistant turns only, or every token
    group_by_length: bool = True  # batches of similar length: less padding
    eval_steps: int | None = Field(None, ge=1)  # default: twice per epoch
    save_steps: int | None = Field(None, ge=1)  # default: at every evaluation
    save_total_limit: int = Field(2, ge=1)
    early_stopping_patience: int | None = Field(3, ge=1)  # evaluations without improvement; None: off
    resume: bool = True  # a re-run of the same config picks up from the last checkpoint
    merge: bool = False  # also save the adapter merged into the base (LoRA, DoRA, QLoRA, IA3)
    distributed: DistributedConfig = DistributedConfig()
    search: SearchConfig = SearchConfig()

    @model_validator(mode="wrap")
    @classmethod
    def _method_sections(cls, data: Any, handler: Any) -> TrainingConfig:
        """Validate each registered method's section with its own model; any other unknown key is an error."""
        from tunesmith.training.methods import settings_models

        if not isinstance(data, dict):
            return handler(data)
        sections, data, errors = settings_models(), dict(data), []
        for key, value in list(data.items()):
            if key in cls.model_fields:
                continue
            if key not in sections:
                errors.append(InitErrorDetails(type="extra_forbidden", loc=(key,), input=value))
                continue
            try:
                data[key] = value if isinstance(value, sections[key]) else sections[key].model_validate(value)
            except ValidationError as err:
                errors += _details(err, (key,))
                del data[key]
        for key, model in sections.items():
            data.setdefault(key, model())
        try:
            validated = handler({k: v for k, v in data.items() if k in cls.model_fields or k in sections})
        except ValidationError as err:
            errors += _details(err)
        if errors:  # every problem at once, each with its full key path
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return validated

    @model_validator(mode="after")
    def _search_keys_exist(self) -> TrainingConfig:
        """Each key of training.search.space names a training setting, and its values are valid for it."""
        from tunesmith.search.space import with_settings

        plain = self.model_dump(mode="json", exclude={"search"})
        for key, dim in self.search.space.items():
            if dim is None:
                continue
            for probe in dim.choices if dim.choices is not None else [dim.low, dim.high]:
                try:
                    TrainingConfig.model_validate(with_settings(plain, {key: probe}))
                except ValidationError as err:
                    first = err.errors()[0]
                    problem = (
                        "not a training setting (keys are as under training:, e.g. learning_rate, epochs, lora.r)"
                        if first["type"] == "extra_forbidden"
                        else f"{probe!r}: {first['msg']}"
                    )
                    raise ValueError(f"search.space.{key}: {problem}") from None
        return self

    @model_validator(mode="after")
    def _method_fits_strategy(self) -> TrainingConfig:
        problem = unsupported(self.method, self.distributed.strategy)
        if problem:
            raise ValueError(problem)
        if self.l2_to_base:
            from tunesmith.training.anchor import why_not_anchored

            problem = why_not_anchored(self.method, self.distributed.strategy)
            if problem:
                raise ValueError(f"l2_to_base: {problem}")
        return self

    @classmethod
    def section_models(cls) -> dict[str, type[BaseModel]]:
        """The methods' sections, for tools that list every key (tunesmith init, config error suggestions)."""
        from tunesmith.training.methods import settings_models

        return dict(settings_models())


class JudgeConfig(Section):
    """LLM-as-judge (off by default): a local model or an OpenAI-compatible endpoint grades answers."""

    enabled: bool = False
    model: str | None = None  # a local Hugging Face checkpoint folder or embedded model name
    endpoint: str | None = None  # an OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1
    endpoint_model: str = "default"
    api_key_env: str = "OPENAI_API_KEY"
    rubric: str = "Judge whether the answer is correct and complete compared with the reference answer."
    max_examples: int = Field(20, ge=1)
    timeout_s: float = Field(60.0, gt=0)

    @model_validator(mode="after")
    def _one_judge(self) -> JudgeConfig:
        if self.enabled and (self.model is None) == (self.endpoint is None):
            raise ValueError(
                "an enabled judge needs exactly one of evaluation.judge.model or evaluation.judge.endpoint"
            )
        return self


class LearningCurveConfig(Section):
    """How the test score grows with training data (tunesmith/evaluation/learning_curve.py): the method trained on
    nested subsets of the training split. `tunesmith curve` always measures it; `evaluation.learning_curve: true`
    measures it in a run too, where the run's own training is the full point."""

    enabled: bool = False
    fractions: list[Fraction] = Field(default_factory=lambda: [0.125, 0.25, 0.5, 1.0], min_length=3)
    # Once three points are measured (the two smallest and the full set), the shares in between are skipped when
    # the fitted score at twice the data is already known to within this (half the 95% interval's width). None:
    # every share is trained, and the largest is also predicted from the others as a check of the fit.
    confident_within: float | None = Field(0.02, gt=0)

    @field_validator("fractions")
    @classmethod
    def _whole_set_last(cls, fractions: list[float]) -> list[float]:
        shares = sorted(set(fractions))
        if shares[-1] != 1.0 or shares[0] <= 0:
            raise ValueError("shares must be above 0 and include 1.0 (the whole training split)")
        return shares


class EvaluationConfig(Section):
    batch_size: int = Field(16, ge=1)
    max_examples: int | None = Field(None, ge=1)
    samples_in_report: int = Field(10, ge=0)
    task: Literal["auto", "classification", "json", "generation"] = "auto"
    json_schema: ExistingFile | None = None  # JSON Schema that structured outputs must satisfy
    judge: JudgeConfig = JudgeConfig()
    learning_curve: LearningCurveConfig = LearningCurveConfig()

    @field_validator("learning_curve", mode="before")
    @classmethod
    def _switch(cls, value: Any) -> Any:
        return {"enabled": value} if isinstance(value, bool) else value  # `learning_curve: true` turns it on


class BenchmarkConfig(Section):
    """A local multiple-choice benchmark: JSONL rows of {"question", "choices", "answer"}."""

    name: str = Field(pattern=r"^[a-z0-9_]+$")
    path: ExistingFile


STANDARD_TIER = ("arc", "hellaswag", "mmlu", "winogrande", "boolq")
LARGE_TIER = STANDARD_TIER + ("commonsenseqa", "piqa", "openbookqa")


def tier_benchmarks(tier: Literal["smoke", "standard", "large"]) -> list[BenchmarkConfig]:
    """The bundled files of a forgetting tier (data/README.md)."""
    if tier == "smoke":
        return [BenchmarkConfig(name="general_knowledge", path=bundled_data("general_knowledge.jsonl"))]
    names = LARGE_TIER if tier == "large" else STANDARD_TIER
    return [BenchmarkConfig(name=name, path=bundled_data(f"{tier}/{name}.jsonl")) for name in names]


class VllmConfig(Section):
    # How to start vLLM's OpenAI-compatible server, model and port left out; vLLM lives in its own environment
    # (it pins its own torch and transformers), e.g. ["/opt/vllm/bin/vllm", "serve"]. None: `vllm serve` on PATH.
    command: list[str] | None = None
    args: list[str] = []  # more server flags, e.g. ["--gpu-memory-utilization", "0.5", "--enforce-eager"]
    startup_timeout_s: int = Field(900, ge=10)
    concurrent: int = Field(8, ge=1)  # requests in flight: the server batches them itself
    # Serve a LoRA adapter as a LoRA on the base instead of merging it first. Off by default: vLLM's LoRA layers
    # and the prompt log-probabilities that multiple-choice scoring reads have not worked together reliably
    # (vLLM 0.32 on a CPU stops with a shape error; an adapter's lm_head delta is left out upstream).
    lora: bool = False


class MitigationConfig(Section):
    """Retraining when forgetting is found (forgetting/mitigation.py); `forgetting.mitigation: off` turns it off."""

    enabled: bool = True
    # Retrainings after the first, each adding the next mitigation of `order` to the ones before it.
    max_attempts: int = Field(2, ge=1, le=4)
    # Ordered by benchmarks/forgetting_defaults.py (the demo, 3 seeds): replay and the L2 pull each turned the
    # same LoRA's general-knowledge loss into a gain; half the learning rate lost more than the rate as derived.
    order: list[Literal["replay", "learning_rate", "fewer_steps", "l2_to_base"]] = Field(
        default_factory=lambda: ["replay", "l2_to_base", "fewer_steps", "learning_rate"], min_length=1
    )

    @model_validator(mode="before")
    @classmethod
    def _off(cls, value: Any) -> Any:
        if value is False or (isinstance(value, str) and value.lower() == "off"):
            return {"enabled": False}
        return value


class ForgettingConfig(Section):
    enabled: bool = True
    # Who scores the questions: hf (lm-eval on the model loaded in this process) or vllm (lm-eval against a vLLM
    # server started for the stage). auto: vllm on a GPU when its command is found and the method can be served
    # (a LoRA adapter, a merged or whole model), else hf. Before and after always use the same one.
    backend: Literal["auto", "hf", "vllm"] = "auto"
    vllm: VllmConfig = VllmConfig()
    # How many general questions: smoke (the bundled 109: too few to resolve the threshold, which the verdict
    # says), standard (1,016: about 200 each of ARC, HellaSwag, MMLU, WinoGrande, BoolQ, bundled; about 2 min
    # per model for SmolLM2-135M on a 2-core CPU), large (4,081: the standard ones, more of each and CommonsenseQA,
    # PIQA, OpenBookQA, bundled), full (lm-eval's own harness_tasks from the hub; standard when it is not
    # reachable). auto, on every device: standard, or large when the standard tier's questions cannot resolve
    # the threshold at the base model's accuracy (unless `limit` caps the questions).
    tier: Literal["auto", "smoke", "standard", "large", "full"] = "auto"
    harness_tasks: list[str] = ["arc_easy", "arc_challenge", "hellaswag", "mmlu", "winogrande", "boolq"]
    benchmarks: list[BenchmarkConfig] | None = None  # your own files, instead of the tier's bundled ones
    limit: int | None = Field(None, ge=1)
    # The largest drop tolerated, relative to the base model's accuracy (0.05: 5% of it, e.g. 2.9 points at 0.57).
    threshold: Fraction = 0.05
    # What an `inconclusive` verdict (the questions cannot tell a drop beyond the threshold from noise) does to
    # promotion. block: the champion stays until the evidence clears the new model, since promotion moves the
    # alias that serving follows and a model that forgot costs its users more than one more cycle on the old one.
    inconclusive: Literal["block", "promote"] = "block"
    # Benchmarks the base model answers no better than chance (one-sided exact binomial test at 5%) are reported but
    # not gated on, nor scored after training: there is no capability there to lose, only guesses that add noise.
    leave_out_at_chance: bool = True
    mitigation: MitigationConfig = MitigationConfig()
    # auto: 16 on a CPU; on a GPU, lm-eval's search for the largest batch that fits.
    batch_size: CountOrAuto = "auto"
    seed: int = 1234

    @property
    def active(self) -> bool:
        return self.enabled and self.benchmarks != []


class PromotionConfig(Section):
    enabled: bool = True
    alias: str = "champion"
    # The new model must beat the champion (or, without one, the base model's best prompt) by more than this, in
    # the task metric (0-1): a difference smaller than a point on tens of test examples is noise, not progress.
    min_improvement: float = Field(0.01, ge=0.0)


class RetrainingConfig(Section):
    # Skip the run when the input data and the config are the same as the last run that trained a model.
    skip_unchanged: bool = True
    # Where a retraining starts. base: the base model, on all the data. champion: the registered champion's
    # weights (tunesmith/retraining/continual.py), trained on the examples it has not seen plus a replay sample of
    # those it was trained on; its splits are kept (its test examples stay test examples), its method is used, and
    # the forgetting gate also compares the new model with it on its own test split, so that what it knew is not
    # lost. Without a champion (the first run) the run starts from the base model and says so.
    start_from: Literal["base", "champion"] = "base"
    # champion: the share of the continued training set drawn from the champion's training examples (0.5: as many
    # old examples as new ones), stratified by label; all of them when there are fewer.
    replay_fraction: float = Field(0.5, ge=0.0, lt=1.0)


class OrchestrationConfig(Section):
    cache: bool = True  # reuse curation, baselines and trainings computed for the same inputs (e.g. after a crash)
    # Concurrency slot that training holds; default tunesmith-training-<host>-<device>. Name it when several
    # hosts (containers, pods) share one accelerator, so that they queue for it together.
    training_slot: str | None = None
    # Prefect notification block told about failed runs, as "<block type>/<name>", e.g. "slack-webhook/ml-team".
    notify_block: str | None = Field(None, pattern=r"^[a-z0-9-]+/[A-Za-z0-9_.-]+$")


class ComparisonConfig(Section):
    """The compare-methods flow: every method trained on the same splits and measured the same way."""

    methods: list[MethodName] = Field(default_factory=_default_comparison, min_length=1)
    # sequential: one method after another in the flow's process; dask / ray: methods are parallel tasks on
    # the engine's workers (trainings on one machine still take turns through the training slot).
    engine: Literal["sequential", "dask", "ray"] = "sequential"
    address: str | None = None  # a running Dask scheduler or Ray cluster; None starts a local one
    workers: int = Field(2, ge=1)  # size of the local cluster
    threads_per_worker: int | None = Field(None, ge=1)  # torch threads per method task; default cores / workers
    latency_examples: int = Field(20, ge=1)  # test examples timed one at a time for inference latency
    skip_unfit: bool = True  # skip methods whose memory estimate exceeds the memory available
    experiment: str | None = None  # MLflow experiment; default "<tracking.experiment>-methods"


class TrackingConfig(Section):
    experiment: str = "tunesmith"
    # MLFLOW_TRACKING_URI, when set, wins over this; without either, a SQLite store in the working folder.
    tracking_uri: str | None = None
    registered_model: str | None = None  # registry name for trained models; default: the run's name


class RunConfig(Section):
    name: str = "tunesmith-run"
    model: str = "smollm2-135m-instruct"
    trust_remote_code: bool = False
    model_cache_dir: Path = Field(default_factory=default_model_cache)
    output_dir: Path = Path("runs")
    data: DataConfig
    prompt: PromptConfig = PromptConfig()
    decision: DecisionConfig = DecisionConfig()
    training: TrainingConfig = TrainingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    forgetting: ForgettingConfig = ForgettingConfig()
    promotion: PromotionConfig = PromotionConfig()
    retraining: RetrainingConfig = RetrainingConfig()
    orchestration: OrchestrationConfig = OrchestrationConfig()
    comparison: ComparisonConfig = ComparisonConfig()
    tracking: TrackingConfig = TrackingConfig()

    @model_validator(mode="after")
    def _objective_fits_data(self) -> RunConfig:
        from tunesmith.formats import get_format
        from tunesmith.training.objectives import OBJECTIVES

        objective, data_format = self.training.objective, self.data.format
        pairs = objective != "auto" and OBJECTIVES[objective].data == "preferences"
        if pairs and get_format(data_format).task_type != "preference":
            raise ValueError(
                f"training.objective {objective} trains on preference pairs, but data.format is {data_format}: "
                "use data.format preference (rows of prompt, chosen, rejected), or objective sft"
            )
        return self

    @model_validator(mode="after")
    def _search_objective_measurable(self) -> RunConfig:
        search = self.training.search
        if search.trials and search.objective != "metric" and not self.forgetting.active:
            raise ValueError(
                f"training.search.objective {search.objective!r} weighs forgetting, which needs the forgetting "
                "benchmark: set forgetting.enabled true (with benchmarks), or objective metric"
            )
        return self

    @field_validator("model")
    @classmethod
    def _model_is_findable(cls, spec: str) -> str:
        if spec in EMBEDDED_MODELS:
            return spec
        path = Path(spec).expanduser()
        if path.is_dir():
            if not (path / "config.json").is_file():
                raise ValueError(f"folder '{spec}' has no config.json: not a Hugging Face checkpoint")
            return spec
        if spec.startswith(("/", ".", "~")) or spec.count("/") > 1 or path.exists():
            raise ValueError(
                f"model path '{spec}' does not exist (use a local checkpoint folder, a hub id such as "
                f"org/name, or one of: {', '.join(EMBEDDED_MODELS)})"
            )
        return spec
