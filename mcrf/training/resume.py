"""Resuming a run: check the settings against the ``last/`` checkpoint, rebuild its tagger.

Both happen before ``accelerator.load_state``, so a changed setting is a clear ``ConfigError``
naming the fields instead of a tensor size mismatch deep inside the restore, and the tagger
(BiLSTM vocabulary included) is the checkpoint's, not one rebuilt from the current data.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Dict, List

from mcrf.errors import ConfigError
from mcrf.training.config import TrainConfig

__all__ = ["RESUMABLE_CHANGES", "check_resumable", "restore_tagger", "upgrade_saved"]

#: TrainConfig fields that may differ between a checkpoint and the run resuming it: the step
#: budget, evaluation and stopping schedule, and where/how it runs. Every other field shapes the
#: model, the data or the restored optimizer/scheduler/sampler state, and must stay the same.
RESUMABLE_CHANGES = frozenset({
    "output_dir", "resume", "overwrite", "epochs", "max_steps", "patience", "eval_every",
    "eval_batch_size", "num_workers", "cpu", "device", "log_every", "max_grad_norm",
})

_FIX = ("resume with the checkpoint's settings, or drop --resume and pass --overwrite to start a fresh run "
        "there, or choose another --output")


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def upgrade_saved(saved: Dict[str, Any]) -> Dict[str, Any]:
    """A ``trainer_state.json`` written before the encoder owned its options, in today's shape.

    Until model format 3 the sub-word window (its length and stride) was two top-level fields of
    both ``train_config`` and the ``tagger`` config. The encoder's own ``upgrade_config`` moves such
    keys into ``encoder_options`` when they are options of the checkpoint's encoder (and set), and
    drops them otherwise (the window of a BiLSTM meant nothing), as loading a format-2 model folder does.
    """
    from mcrf.models.encoders import encoder_class

    saved = dict(saved)
    for key, fields in (("train_config", TrainConfig), ("tagger", None)):
        data = saved.get(key)
        if not isinstance(data, dict) or not isinstance(data.get("encoder"), str):
            continue
        if fields is None:
            from mcrf.models import TaggerConfig as fields
        extra = set(data) - {f.name for f in dataclasses.fields(fields)}
        if not extra:
            continue
        kept = {k: v for k, v in data.items() if k not in extra}
        upgraded, _ = encoder_class(data["encoder"]).upgrade_config(
            {**{k: v for k, v in data.items() if k in extra}, "encoder_options": data.get("encoder_options", {})}, 2)
        saved[key] = {**kept, "encoder_options": upgraded["encoder_options"]}
    return saved


def check_resumable(saved: Dict[str, Any], config: TrainConfig, output_dir: Path) -> None:
    """Raise unless ``config`` may continue the run whose ``trainer_state.json`` is ``saved``.

    Args:
        saved: the checkpoint's ``trainer_state.json`` (with ``train_config``).
        config: the current settings.
        output_dir: the run directory (for the message).

    Raises:
        ConfigError: naming each differing field (checkpoint value vs now) and the fix.
    """
    then = upgrade_saved(saved).get("train_config")
    if not isinstance(then, dict):
        raise ConfigError(f"cannot resume {output_dir}: its last/trainer_state.json has no train_config "
                         f"(written by an older mcrf); {_FIX}")
    defaults = {f.name: f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
                for f in dataclasses.fields(TrainConfig)}  # fields an older mcrf lacked
    now = config.to_dict()
    differ: List[str] = []
    for name in sorted(set(then) | set(now)):
        if name in RESUMABLE_CHANGES:
            continue
        old, new = then.get(name, defaults.get(name, "<absent>")), now.get(name, "<absent>")
        if old != new:
            differ.append(f"{name}: {_short(old)} (checkpoint) != {_short(new)} (now)")
    if differ:
        raise ConfigError(f"cannot resume {output_dir}: settings differ from the checkpoint's: "
                         f"{'; '.join(differ)}; {_FIX}")


def restore_tagger(saved: Dict[str, Any], corpus: Any, output_dir: Path):
    """A fresh ``Tagger`` shaped like the checkpoint's (weights come later from ``load_state``).

    The tagger config and the encoder's files (e.g. the BiLSTM vocabulary, in ``last/encoder``)
    are the saved ones, so the restored weights fit whatever the current training data holds.

    Raises:
        ConfigError: the corpus's labels or scheme differ from the checkpoint's, or the checkpoint
            lacks its encoder files (written by an older mcrf).
    """
    from mcrf.models import Tagger, TaggerConfig
    from mcrf.models.encoders import encoder_class
    from mcrf.training.checkpoint import ENCODER_DIR, find_checkpoint

    config = TaggerConfig.from_dict(upgrade_saved(saved)["tagger"])
    differ = [f"{name}: {_short(old)} (checkpoint) != {_short(new)} (now)"
              for name, old, new in (("labels", config.labels, list(corpus.labels)),
                                     ("scheme", config.scheme, corpus.scheme)) if old != new]
    if differ:
        raise ConfigError(f"cannot resume {output_dir}: the corpus differs from the checkpoint's: "
                          f"{'; '.join(differ)}; {_FIX}")
    last = find_checkpoint(output_dir, "last")
    if "encoder_state" not in saved or last is None or not (last / ENCODER_DIR).is_dir():
        raise ConfigError(f"cannot resume {output_dir}: its checkpoint lacks the encoder's files (written by "
                          f"an older mcrf); drop --resume and pass --overwrite to start a fresh run")
    kind = encoder_class(config.encoder)
    return Tagger(config, kind.load(config, last / ENCODER_DIR, saved["encoder_state"]))
