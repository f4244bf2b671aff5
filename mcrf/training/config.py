"""``TrainConfig``: every setting of a training run, resolved in layers, each value with its source.

``TrainConfig`` is flattened from the groups that own the settings (``mcrf.fields.inherit`` copies
each field with its default, help and validator; nothing is restated here):

- data loading: ``mcrf.data.LoadConfig``;
- the model: ``mcrf.models.TaggerConfig`` (encoder, decoder, dropout, the encoder's own options);
- optimisation: ``mcrf.training.optim.OptimConfig``;
- and the run's own fields below (epochs, batches, evaluation, output).

Values are resolved in layers, each overriding the one before:

1. ``default``: the field defaults;
2. ``encoder``: the encoder's recommendations (``Encoder.recommended``: learning rates, decay,
   warmup, clipping, epochs) for the fields left unset (``None``), and, once the model is built,
   the encoder options it decided (``Encoder.complete``: e.g. the sub-word window);
3. ``dataset``: the dataset preset (``PRESETS``; ``sample`` trains a small BiLSTM quickly);
4. ``flag``: what the user set (a command-line flag or a keyword argument).

``sources`` records the layer each value came from; the settings header, ``train_log.jsonl`` and
``metrics.json`` show it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from mcrf.data.corpus import LoadConfig
from mcrf.errors import ConfigError
from mcrf.fields import choice, flag_bool, integer, inherit, option, seed as seed_range, text, validate
from mcrf.models.config import DECODERS, POSTPROCESS, TaggerConfig
from mcrf.training.optim import OptimConfig

__all__ = ["TrainConfig", "DECODERS", "POSTPROCESS", "MIXED_PRECISION", "PRESETS", "ENCODER_TUNED"]

MIXED_PRECISION = ("no", "bf16", "fp16")
#: Fields whose unset value (``None``) the encoder's recommendation fills.
ENCODER_TUNED = tuple(f.name for f in dataclasses.fields(OptimConfig)) + ("epochs",)

#: Dataset presets (the ``dataset`` layer). ``sample`` is the bundled toy corpus: a BiLSTM trains,
#: evaluates and saves in well under 2 minutes on 2 CPU cores. A preset holds what suits the
#: corpus whatever the encoder (its size: epochs, batch size); learning rates and the other
#: optimiser settings belong to the encoder's recommendations, so ``--encoder <bert>`` on a preset
#: dataset still fine-tunes at a BERT's rate.
PRESETS: Dict[str, Dict[str, Any]] = {
    "sample": {"encoder": "bilstm", "epochs": 5, "batch_size": 16, "patience": None},
}


def _eval_every(name: str, value: Any) -> Any:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if value == "epoch" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return value
    raise ConfigError(f"expected {name} to be 'epoch' or a number of steps >= 1, got {value!r}")


@dataclass
class TrainConfig:
    """Everything ``mcrf.training.train`` needs (see the module docstring for how values are resolved)."""

    dataset: str = option("sample", check=text(what="a dataset name or path"), cli=False, help=(
        "registered name (sample, conll2003, ...), a folder of train/dev/test files, or a hub id"))
    # data loading (LoadConfig)
    data_dir: Optional[str] = inherit(LoadConfig, "data_dir")
    scheme: Optional[str] = inherit(LoadConfig, "scheme")
    source_scheme: Optional[str] = inherit(LoadConfig, "source_scheme")
    policy: str = inherit(LoadConfig, "policy")
    dev_fraction: float = inherit(LoadConfig, "dev_fraction", default=0.1)  # training needs a dev split
    token_column: Optional[int] = inherit(LoadConfig, "token_column")
    tag_column: Optional[int] = inherit(LoadConfig, "tag_column")
    separator: Optional[str] = inherit(LoadConfig, "separator")
    encoding: Optional[str] = inherit(LoadConfig, "encoding")
    # the model (TaggerConfig)
    encoder: str = inherit(TaggerConfig, "encoder")
    decoder: str = inherit(TaggerConfig, "decoder")
    postprocess: str = inherit(TaggerConfig, "postprocess")
    dropout: float = inherit(TaggerConfig, "dropout")
    encoder_options: Dict[str, Any] = inherit(TaggerConfig, "encoder_options")
    # optimisation (OptimConfig)
    lr: Optional[float] = inherit(OptimConfig, "lr")
    head_lr: Optional[float] = inherit(OptimConfig, "head_lr")
    layer_decay: Optional[float] = inherit(OptimConfig, "layer_decay")
    weight_decay: Optional[float] = inherit(OptimConfig, "weight_decay")
    warmup_ratio: Optional[float] = inherit(OptimConfig, "warmup_ratio")
    max_grad_norm: Optional[float] = inherit(OptimConfig, "max_grad_norm")
    # the run
    output_dir: str = option("runs/mcrf", check=text(what="a folder path"), help=(
        "folder for checkpoints, logs, metrics and the final model/"))
    overwrite: bool = option(False, check=flag_bool, help="start a fresh run in a folder that holds one")
    resume: bool = option(False, check=flag_bool, help=(
        "continue the run in the output folder from its last/ checkpoint (optimizer, schedule, RNG, counters)"))
    epochs: Optional[int] = option(None, check=integer(1, optional=True), help=(
        "training epochs, ignored when max_steps is set (default: the encoder's recommendation)"))
    max_steps: Optional[int] = option(None, check=integer(1, optional=True, none_means="epochs decide"), help=(
        "total optimizer steps; overrides epochs"))
    batch_size: int = option(32, check=integer(1), help="training sentences per batch and process")
    eval_batch_size: int = option(64, check=integer(1), help="sentences per prediction batch and process")
    seed: int = option(42, check=seed_range(), help="seed of model initialisation, dropout and batch order")
    eval_every: Union[str, int] = option("epoch", check=_eval_every, help=(
        "'epoch' or a number of optimizer steps between dev evaluations"))
    patience: Optional[int] = option(3, check=integer(1, optional=True, none_means="never stop early"), help=(
        "stop after this many evaluations without a better dev F1 (none: never)"))
    bucket: bool = option(True, check=flag_bool, help=(
        "length-bucketed batches (little padding) instead of plain random batches"))
    mixed_precision: str = option("no", check=choice(MIXED_PRECISION), help=(
        "autocast precision (the CRF stays float32); fp16 needs a GPU"))
    cpu: bool = option(False, check=flag_bool, help="train on the CPU even when a GPU is available (--device cpu)")
    device: Optional[str] = option(None, check=text(optional=True), help=(
        "cpu, cuda, cuda:1, ... for a run in one process (default: the GPU when there is one, else the CPU); "
        "under accelerate launch or torchrun each process takes the device of its local rank"))
    max_train_sentences: Optional[int] = option(None, check=integer(1, optional=True), help=(
        "train on only the first N training sentences (quick runs)"))
    max_eval_sentences: Optional[int] = option(None, check=integer(1, optional=True), help=(
        "evaluate on only the first N dev/test sentences (quick runs)"))
    num_workers: Optional[int] = option(None, check=integer(0, optional=True), help=(
        "DataLoader worker processes for collation (default: 4 on a GPU, where they keep it fed; 0 on the CPU, "
        "where they compete with the step for the cores)"))
    log_every: int = option(50, check=integer(0), help=(
        "optimizer steps between log lines of the mean training loss since the last one (also in "
        "train_log.jsonl); the loss stays on the device in between; 0: only per epoch and evaluation"))
    sources: Dict[str, str] = dataclasses.field(default_factory=dict, compare=False, repr=False,
                                                metadata={"cli": False, "help": "the layer of each value"})

    def __post_init__(self) -> None:
        self._resolve()
        self.validate()

    # ------------------------------------------------------------------ layers
    @classmethod
    def for_dataset(cls, dataset: str, **flags: Any) -> "TrainConfig":
        """The settings for ``dataset``: its preset (``PRESETS``) over the defaults, then ``flags``.

        Raises:
            TypeError: a keyword that is not a ``TrainConfig`` field (as for any Python call).
            ConfigError: a value a validator refuses.
        """
        unknown = sorted(set(flags) - set(cls.field_names()))
        if unknown:
            raise TypeError(f"unknown TrainConfig field(s) {unknown}; valid: {cls.field_names()}")
        preset = PRESETS.get(dataset, {})
        sources = {name: "dataset" for name in preset}
        sources.update({name: "flag" for name in ("dataset", *flags)})
        return cls(dataset=dataset, **{**preset, **flags}, sources=sources)

    def _resolve(self) -> None:
        """Fill ``sources`` for every field and the encoder's recommendations for the unset tuned fields.

        Values whose source is ``encoder`` are derived again (a changed encoder, ``dataclasses.replace``).
        """
        from mcrf.models.encoders import encoder_class

        if not isinstance(self.sources, Mapping):
            raise ConfigError(f"expected sources to be a dict of field -> layer, got {self.sources!r}")
        sources = dict(self.sources)
        preset = PRESETS.get(self.dataset, {}) if isinstance(self.dataset, str) else {}
        for field in dataclasses.fields(self):
            if field.name == "sources":
                continue
            value, source = getattr(self, field.name), sources.get(field.name)
            default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
            if source == "encoder" and field.name in ENCODER_TUNED:
                setattr(self, field.name, None)
            elif source == "dataset" and field.name in preset and value == preset[field.name]:
                pass
            elif source not in ("flag", "default") or (source == "default" and value != default):
                sources[field.name] = "default" if value == default else "flag"
        validate(self, ["encoder"])
        recommended = encoder_class(self.encoder).recommended()
        for name in ENCODER_TUNED:
            if getattr(self, name) is None:
                if name not in recommended:
                    raise ConfigError(f"the {self.encoder!r} encoder recommends no {name}; set {name}")
                setattr(self, name, recommended[name])
                sources[name] = "encoder"
        self.sources = sources

    @classmethod
    def field_names(cls) -> List[str]:
        """Names of the setting fields, in declaration order (``sources`` excluded)."""
        return [f.name for f in dataclasses.fields(cls) if f.name != "sources"]

    # ------------------------------------------------------------------ checks and views
    def validate(self) -> None:
        """Run each field's validator (``mcrf.fields``) and the encoder's check of its options; raise
        ``ConfigError`` saying what was expected (an option the encoder lacks names the encoder)."""
        from mcrf.models.encoders import encoder_class

        validate(self)
        encoder_class(self.encoder).options(self)
        if self.resume and self.overwrite:
            raise ConfigError("--resume continues the run in the output folder and --overwrite starts a fresh one "
                              "there: pass one of them, not both")
        if self.cpu and self.device not in (None, "cpu"):
            raise ConfigError(f"--cpu trains on the CPU but --device says {self.device}: pass one of them")

    def load_config(self) -> LoadConfig:
        """The ``LoadConfig`` for ``mcrf.data.load_corpus`` (the data-loading fields)."""
        names = {f.name for f in dataclasses.fields(LoadConfig)} & set(self.field_names())
        return LoadConfig(**{name: getattr(self, name) for name in names})

    def tagger_config(self, labels: List[str], scheme: str) -> TaggerConfig:
        """The ``TaggerConfig`` of a fresh model for a corpus with ``labels`` in ``scheme``."""
        names = {f.name for f in dataclasses.fields(TaggerConfig)} & set(self.field_names()) - {"scheme"}
        return TaggerConfig(labels=list(labels), scheme=scheme, **{name: getattr(self, name) for name in names})

    def to_dict(self) -> Dict[str, Any]:
        """The settings as a JSON-ready dict (``sources`` excluded: see ``settings``)."""
        return {name: getattr(self, name) for name in self.field_names()}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrainConfig":
        """Inverse of ``to_dict``; unknown keys raise ``TypeError`` naming them."""
        unknown = sorted(set(values) - set(cls.field_names()) - {"sources"})
        if unknown:
            raise TypeError(f"unknown TrainConfig field(s) {unknown}; valid: {cls.field_names()}")
        return cls(**values)

    def settings(self, decided: Optional[Mapping[str, Any]] = None) -> Dict[str, Dict[str, Any]]:
        """``{field: {"value": ..., "source": ...}}`` for every setting.

        The encoder's options are one entry each, ``encoder_options.NAME``: the user's with the
        source of ``encoder_options``, the ones the built model decided (``decided``) with ``encoder``.

        Args:
            decided: ``{"encoder_options": ...}`` of the built model (``Tagger.config``), all its options.
        """
        decided = decided or {}
        out = {}
        for name in self.field_names():
            value, source = getattr(self, name), self.sources.get(name, "default")
            if name == "encoder_options":
                for key, option in {**decided.get(name, {}), **value}.items():
                    out[f"{name}.{key}"] = {"value": option, "source": source if key in value else "encoder"}
                continue
            out[name] = {"value": value, "source": source}
        return out

    def header(self, decided: Optional[Mapping[str, Any]] = None) -> str:
        """The settings block printed at the start of a run: each value and the layer it came from."""
        rows: List[Tuple[str, str, str]] = [(name, json.dumps(item["value"]), item["source"])
                                            for name, item in self.settings(decided).items()]
        name_width = max(len(row[0]) for row in rows)
        value_width = max(len(row[1]) for row in rows)
        lines = ["mcrf training settings (value, source: default < encoder < dataset < flag)"]
        lines += [f"  {name.ljust(name_width)}  {value.ljust(value_width)}  ({source})" for name, value, source in rows]
        return "\n".join(lines)
