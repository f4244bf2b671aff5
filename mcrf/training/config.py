"""``TrainConfig``: the one source of training defaults (the CLI maps its flags onto it)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Dict, Optional, Union

from mcrf.data.corpus import LoadConfig
from mcrf.models.config import DECODERS, POSTPROCESS

__all__ = ["TrainConfig", "DECODERS", "POSTPROCESS", "MIXED_PRECISION", "DEFAULT_DEV_FRACTION"]

MIXED_PRECISION = ("no", "bf16", "fp16")
#: Share of train carved off as dev when the corpus has no dev split and ``dev_fraction`` is unset.
DEFAULT_DEV_FRACTION = 0.1

# Presets applied by ``TrainConfig.for_dataset`` on top of the defaults. ``sample`` is the bundled
# toy corpus: a BiLSTM trains, evaluates and saves in well under 2 minutes on 2 CPU cores.
_PRESETS: Dict[str, Dict[str, Any]] = {
    "sample": {
        "encoder": "bilstm",
        "epochs": 5,
        "batch_size": 16,
        "lr": 3e-3,
        "head_lr": 3e-3,
        "layer_decay": 1.0,
        "weight_decay": 0.0,
        "warmup_ratio": 0.05,
        "max_grad_norm": 5.0,
        "patience": None,
    },
}


@dataclass
class TrainConfig:
    """Everything ``mcrf.training.train`` needs; defaults target fine-tuning BERT on CoNLL-style data.

    Attributes:
        dataset: dataset name (``sample``, ``conll2003``, ...) or path, for ``mcrf.data.load_corpus``.
        data_dir: directory holding the corpus files (else ``MCRF_DATA_DIR`` / the hub).
        scheme: tag scheme to train in (e.g. ``"BIOES"``); ``None`` keeps the corpus default.
        source_scheme: scheme the corpus files are written in; ``None`` detects it.
        policy: illegal gold sequences: ``repair``, ``drop`` or ``error`` (``LoadConfig.policy``).
        dev_fraction: share of train carved off as dev when the corpus has no dev split
            (CoNLL-2000); ``None`` uses ``DEFAULT_DEV_FRACTION`` (0.1) for such corpora.
        token_column: token column of column files (``None``: the registry's, else 0).
        tag_column: tag column of column files (``None``: the registry's, else the last).
        separator: column separator (``None``: runs of spaces/tabs).
        encoding: corpus file encoding (``None``: the registry's, else UTF-8).
        encoder: ``"bilstm"`` or a Hugging Face model id / local directory.
        decoder: ``mcrf`` (masked training and decoding), ``mcrf-decoding`` (plain CRF training,
            masked Viterbi), ``crf`` or ``softmax``.
        postprocess: ``retain`` or ``discard`` — how ``crf``/``softmax`` outputs are made legal.
        output_dir: where checkpoints, logs, metrics and the final ``model/`` go.
        overwrite: allow starting a fresh run in an ``output_dir`` that already holds one.
        epochs: training epochs (ignored when ``max_steps`` is set).
        max_steps: total optimizer steps; overrides ``epochs``.
        batch_size: training sentences per batch and process.
        eval_batch_size: sentences per prediction batch and process.
        lr: peak learning rate of the encoder's top layer.
        head_lr: peak learning rate of the linear head and the CRF (higher than ``lr``).
        layer_decay: layer-wise learning-rate decay (the paper's ``lr_decay``): encoder layer
            ``N`` of ``L`` (0-based) gets ``lr * layer_decay ** (L - 1 - N)``, the embeddings
            ``lr * layer_decay ** L``; 1.0 disables it.
        weight_decay: AdamW weight decay (never applied to biases, LayerNorm or CRF scores).
        warmup_ratio: share of the steps with linear warmup, then linear decay to 0.
        max_grad_norm: gradient clipping norm (0 disables clipping).
        seed: seed for model init, dropout and batch order.
        eval_every: ``"epoch"`` or a number of optimizer steps between dev evaluations.
        patience: stop after this many evaluations without a better dev F1 (``None``: never).
        bucket: length-bucketed batches (dynamic padding) instead of plain random batches.
        mixed_precision: ``"no"``, ``"bf16"`` or ``"fp16"`` (Accelerate autocast; the CRF stays float32).
        cpu: train on the CPU even when a GPU is available (without any accelerator the CPU is
            used anyway, multi-process with gloo under ``torchrun``/``accelerate launch``).
        max_length: encoder window in sub-words incl. special tokens (HF encoders).
        stride: sub-word overlap between windows of long sentences (HF encoders).
        dropout: dropout before the head; ``None`` keeps the ``TaggerConfig`` default.
        resume: continue from ``output_dir/last`` (optimizer, scheduler, RNG and step counters).
        max_train_sentences: use only the first N training sentences (quick runs).
        max_eval_sentences: evaluate on only the first N dev/test sentences (quick runs).
        num_workers: DataLoader worker processes for collation.
    """

    dataset: str = "sample"
    data_dir: Optional[str] = None
    scheme: Optional[str] = None
    # data loading: defaults are LoadConfig's (the one source of them)
    source_scheme: Optional[str] = LoadConfig.source_scheme
    policy: str = LoadConfig.policy
    dev_fraction: Optional[float] = LoadConfig.dev_fraction
    token_column: Optional[int] = LoadConfig.token_column
    tag_column: Optional[int] = LoadConfig.tag_column
    separator: Optional[str] = LoadConfig.separator
    encoding: Optional[str] = LoadConfig.encoding
    encoder: str = "bert-base-cased"
    decoder: str = "mcrf"
    postprocess: str = "retain"
    output_dir: str = "runs/mcrf"
    overwrite: bool = False
    epochs: int = 3
    max_steps: Optional[int] = None
    batch_size: int = 32
    eval_batch_size: int = 64
    lr: float = 5e-5
    head_lr: float = 1e-3
    layer_decay: float = 0.9
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    seed: int = 42
    eval_every: Union[str, int] = "epoch"
    patience: Optional[int] = 3
    bucket: bool = True
    mixed_precision: str = "no"
    cpu: bool = False
    max_length: int = 512
    stride: int = 128
    dropout: Optional[float] = None
    resume: bool = False
    max_train_sentences: Optional[int] = None
    max_eval_sentences: Optional[int] = None
    num_workers: int = 0

    def __post_init__(self) -> None:
        self.validate()

    @classmethod
    def for_dataset(cls, dataset: str, **overrides: Any) -> "TrainConfig":
        """Defaults for ``dataset`` (a preset for ``sample``: BiLSTM, 5 epochs), then ``overrides``.

        Raises:
            TypeError: an override that is not a ``TrainConfig`` field.
        """
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise TypeError(f"unknown TrainConfig field(s) {unknown}; valid: {cls.field_names()}")
        values = dict(_PRESETS.get(dataset, {}))
        values.update(overrides)
        return cls(dataset=dataset, **values)

    @classmethod
    def field_names(cls) -> list:
        """Names of all fields, in declaration order."""
        return [f.name for f in dataclasses.fields(cls)]

    def validate(self) -> None:
        """Check every field; raise ``ValueError``/``TypeError`` saying what was expected and the fix."""

        def need(cond: bool, message: str) -> None:
            if not cond:
                raise ValueError(message)

        need(isinstance(self.dataset, str) and self.dataset != "",
             f"expected dataset to be a dataset name or path, got {self.dataset!r}")
        self._validate_data_fields()
        need(isinstance(self.encoder, str) and self.encoder != "",
             f"expected encoder to be 'bilstm' or a Hugging Face model id/path, got {self.encoder!r}")
        need(self.decoder in DECODERS, f"expected decoder in {DECODERS}, got {self.decoder!r}")
        need(self.postprocess in POSTPROCESS,
             f"expected postprocess in {POSTPROCESS}, got {self.postprocess!r}")
        need(self.mixed_precision in MIXED_PRECISION,
             f"expected mixed_precision in {MIXED_PRECISION}, got {self.mixed_precision!r}")
        for name in ("epochs", "batch_size", "eval_batch_size", "max_length"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"expected {name} to be an integer >= 1, got {value!r}")
        for name in ("max_steps", "max_train_sentences", "max_eval_sentences", "patience"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"expected {name} to be None or an integer >= 1, got {value!r}; "
                                 "use None to disable it")
        need(isinstance(self.stride, int) and 0 <= self.stride < self.max_length,
             f"expected 0 <= stride < max_length ({self.max_length}), got stride={self.stride!r}")
        need(isinstance(self.num_workers, int) and self.num_workers >= 0,
             f"expected num_workers >= 0, got {self.num_workers!r}")
        for name in ("lr", "head_lr"):
            value = getattr(self, name)
            need(isinstance(value, (int, float)) and value > 0,
                 f"expected {name} > 0, got {value!r}")
        need(isinstance(self.layer_decay, (int, float)) and 0 < self.layer_decay <= 1,
             f"expected 0 < layer_decay <= 1 (1 disables it), got {self.layer_decay!r}")
        need(isinstance(self.weight_decay, (int, float)) and self.weight_decay >= 0,
             f"expected weight_decay >= 0, got {self.weight_decay!r}")
        need(isinstance(self.warmup_ratio, (int, float)) and 0 <= self.warmup_ratio < 1,
             f"expected 0 <= warmup_ratio < 1, got {self.warmup_ratio!r}")
        need(isinstance(self.max_grad_norm, (int, float)) and self.max_grad_norm >= 0,
             f"expected max_grad_norm >= 0 (0 disables clipping), got {self.max_grad_norm!r}")
        need(self.dropout is None or (isinstance(self.dropout, (int, float)) and 0 <= self.dropout < 1),
             f"expected dropout None or in [0, 1), got {self.dropout!r}")
        need(isinstance(self.seed, int), f"expected an integer seed, got {self.seed!r}")
        if isinstance(self.eval_every, str) and self.eval_every.isdigit():
            self.eval_every = int(self.eval_every)
        if isinstance(self.eval_every, bool) or not (
            self.eval_every == "epoch" or (isinstance(self.eval_every, int) and self.eval_every >= 1)
        ):
            raise ValueError(f"expected eval_every to be 'epoch' or a number of steps >= 1, "
                             f"got {self.eval_every!r}")

    def _validate_data_fields(self) -> None:
        """The data-loading fields: checked here so a bad value fails at config time, not mid-run."""
        import codecs

        from mcrf.schemes import canonical_scheme

        for name in ("scheme", "source_scheme"):
            value = getattr(self, name)
            if value is not None:
                if not isinstance(value, str):
                    raise ValueError(f"expected {name} to be a scheme name or None, got {value!r}")
                setattr(self, name, canonical_scheme(value))  # ValueError listing the valid names
        for name in ("token_column", "tag_column"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"expected {name} to be None or a column index (int, negative counts "
                                 f"from the end), got {value!r}")
        if self.separator is not None and (not isinstance(self.separator, str) or self.separator == ""):
            raise ValueError(f"expected separator to be None (runs of spaces/tabs) or a non-empty string, "
                             f"got {self.separator!r}")
        if self.encoding is not None:
            try:
                codecs.lookup(self.encoding)
            except (LookupError, TypeError):
                raise ValueError(f"expected encoding to be None or a Python codec name (e.g. 'utf-8', "
                                 f"'latin-1'), got {self.encoding!r}") from None
        if isinstance(self.dev_fraction, bool) or not (
            self.dev_fraction is None or isinstance(self.dev_fraction, (int, float))
        ):
            raise ValueError(f"expected dev_fraction to be None or a number in (0, 1), got {self.dev_fraction!r}")
        self.load_config()  # LoadConfig's own checks (policy, dev_fraction range)

    def load_config(self) -> LoadConfig:
        """The ``LoadConfig`` for ``mcrf.data.load_corpus``.

        ``dev_fraction`` ``None`` becomes ``DEFAULT_DEV_FRACTION``; ``load_corpus`` only carves a
        dev split out of train when the corpus has none, so corpora with a dev split are unaffected.
        """
        return LoadConfig(
            data_dir=self.data_dir, scheme=self.scheme, source_scheme=self.source_scheme, policy=self.policy,
            token_column=self.token_column, tag_column=self.tag_column, separator=self.separator,
            encoding=self.encoding,
            dev_fraction=DEFAULT_DEV_FRACTION if self.dev_fraction is None else self.dev_fraction,
        )

    def to_dict(self) -> Dict[str, Any]:
        """All fields as a JSON-serialisable dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> "TrainConfig":
        """Inverse of ``to_dict``; unknown keys raise ``TypeError`` naming them."""
        unknown = sorted(set(values) - set(cls.field_names()))
        if unknown:
            raise TypeError(f"unknown TrainConfig field(s) {unknown}; valid: {cls.field_names()}")
        return cls(**values)

    def header(self) -> str:
        """One block of the resolved settings, for the start of a run."""
        width = max(len(name) for name in self.field_names())
        lines = ["mcrf training settings"]
        lines += [f"  {name.ljust(width)}  {json.dumps(value)}" for name, value in self.to_dict().items()]
        return "\n".join(lines)
