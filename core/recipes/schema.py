"""The recipe schema (omegaconf structured configs). Stages are a list; every component is named by plugin."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf


@dataclass
class ComponentConfig:
    """A component chosen by plugin name.

    ``pretrained``: hub id or local path of real weights (ignored under ``shrink``);
    ``config``: architecture for a random init (default: the plugin's tiny config);
    ``options``: keyword arguments for the plugin class.
    """

    name: str = "???"
    pretrained: str | None = None
    config: dict[str, Any] | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class LanguageConfig(ComponentConfig):
    #: conversation template plugin name used for instruction stages and inference
    template: str = "???"


@dataclass
class ModelConfig:
    vision: ComponentConfig = field(default_factory=ComponentConfig)
    connector: ComponentConfig = field(default_factory=ComponentConfig)
    language: LanguageConfig = field(default_factory=LanguageConfig)
    #: "placeholder": one <image> token expanded to the image features (v1.5);
    #: "im_start_end": <im_start> + N x <im_patch> + <im_end> (v1.0)
    image_markup: str = "placeholder"
    #: weights dtype: float32 | bfloat16 | float16
    dtype: str = "float32"
    #: attention implementation passed to transformers: sdpa | eager | flash_attention_2
    attention: str = "sdpa"


@dataclass
class TuningConfig:
    """Per-module tuning: plugin name (frozen | full | lora) and its options (LoRA r, alpha, dropout, targets)."""

    vision: str = "frozen"
    connector: str = "full"
    language: str = "frozen"
    options: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class DatasetConfig:
    name: str = "???"
    path: str = "???"
    image_root: str | None = None
    #: sampling weight in a stage's mixture (relative)
    weight: float = 1.0
    #: take at most this many records (None: all)
    limit: int | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimizerConfig:
    """An optimizer plugin (``medzoo plugins``) and its settings; a null key is left to the optimizer's default and
    a set key the optimizer does not take is an error."""

    name: str = "adamw"
    lr: float = 2e-5
    #: learning rate of one module's parameters instead of ``lr`` (vision | connector | language), e.g. LLaVA's
    #: and ColonGPT's ``mm_projector_lr``: ``{connector: 2.0e-3}``; the schedule scales every group alike
    module_lr: dict[str, float] = field(default_factory=dict)
    weight_decay: float = 0.0
    #: adamw
    betas: list[float] | None = None
    #: adamw, sgd (CUDA only)
    fused: bool | None = None
    #: sgd
    momentum: float | None = None
    nesterov: bool | None = None
    #: further keyword arguments of the optimizer plugin
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ScheduleConfig:
    """A learning-rate schedule plugin, stepped once per optimizer step after ``warmup_ratio`` of the steps."""

    name: str = "cosine"
    warmup_ratio: float = 0.03
    #: further keyword arguments of the schedule plugin (cosine: num_cycles)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class StageConfig:
    name: str = "???"
    #: what the stage is to the curriculum, which selects and combines stages by role; each curriculum declares the
    #: roles it accepts (llava-med: alignment | instruct | preference | downstream | custom)
    role: str = "custom"
    #: stage whose weights this one starts from (default: the previous stage)
    init_from: str | None = None
    #: template for this stage (default: the language model's)
    template: str | None = None
    #: where <image> goes in its turn: keep | front | end (null: the template's choice)
    image_placement: str | None = None
    #: exact: labels on exactly the assistant replies; official: the template's official masking
    label_masking: str = "exact"
    datasets: list[DatasetConfig] = field(default_factory=list)
    #: the training objective plugin and its options, ``{name: dpo, beta: 0.1}`` (``medzoo plugins``: kind objective)
    objective: dict[str, Any] = field(default_factory=lambda: {"name": "sft"})
    tuning: TuningConfig = field(default_factory=TuningConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    epochs: float = 1.0
    max_steps: int | None = None
    global_batch_size: int = 128
    micro_batch_size: int = 4
    max_length: int = 2048
    gradient_checkpointing: bool = False
    #: fp32 | bf16 | fp16
    precision: str = "bf16"
    seed: int = 42
    #: group samples of similar length into batches (less padding)
    group_by_length: bool = True
    save_every_steps: int | None = None
    max_grad_norm: float = 1.0
    #: pack several samples into rows of up to max_length tokens (position ids restart per sample, no padding)
    packing: bool = False
    #: wrap the model in torch.compile for training
    compile: bool = False


@dataclass
class CurriculumConfig:
    name: str = "llava-med"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class BenchmarkConfig:
    name: str = "???"
    path: str | None = None
    image_root: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataConfig:
    """Where data lives; ``${data.root}`` may be used in dataset paths."""

    root: str = "data"
    #: skip | error: what to do with a malformed record or a missing / corrupt image
    on_bad_record: str = "skip"
    #: create the built-in synthetic set under root if it is missing
    synthesize: bool = False
    synth_options: dict[str, Any] = field(default_factory=dict)


#: the experiment trackers a run can log to, through accelerate's trackers
TRACKERS: tuple[str, ...] = ("tensorboard", "wandb", "mlflow")


@dataclass
class LoggingConfig:
    """Experiment tracking through accelerate's trackers (``metrics.jsonl`` and ``plots/`` are written either way)."""

    #: tensorboard | wandb | mlflow, or a list of them; [] or none: no tracker; null: tensorboard when installed
    trackers: Any = None
    #: wandb project / mlflow experiment (null: the recipe's name)
    project: str | None = None
    #: send the step scalars every N optimizer steps (and at each stage's last step)
    every_steps: int = 1
    #: per tracker: {tensorboard: SummaryWriter arguments, wandb: wandb.init arguments, mlflow: {tracking_uri, ...}}
    options: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Recipe:
    name: str = "???"
    description: str = ""
    #: base recipe(s) this one inherits from (names in recipes/ or paths)
    defaults: list[str] = field(default_factory=list)
    #: build every component tiny and random (same types) instead of loading pretrained weights
    shrink: bool = False
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    stages: list[StageConfig] = field(default_factory=list)
    benchmarks: list[BenchmarkConfig] = field(default_factory=list)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    citation: str = ""


#: the optimizer keys that are the plugin's own keyword arguments (``lr`` and ``weight_decay`` always go to it)
OPTIMIZER_PLUGIN_KEYS: tuple[str, ...] = ("betas", "fused", "momentum", "nesterov")


def optimizer_options(optimizer: Any) -> dict[str, Any]:
    """The keyword arguments a stage's ``optimizer`` section gives its plugin besides ``lr`` and ``weight_decay``:
    the plugin keys that are set, then ``options``."""
    plain = OmegaConf.to_container(optimizer, resolve=True) if isinstance(optimizer, DictConfig) else dict(optimizer)
    given = {key: plain[key] for key in OPTIMIZER_PLUGIN_KEYS if plain.get(key) is not None}
    return {**given, **(plain.get("options") or {})}


def requested_trackers(trackers: Any) -> list[str] | None:
    """``logging.trackers`` as a list of names (``[]``: none), or ``None`` for the default; see validation."""
    if trackers is None:
        return None
    if isinstance(trackers, str):
        return [] if trackers.strip().lower() in ("none", "") else [trackers.strip()]
    return list(dict.fromkeys(str(name) for name in trackers))
