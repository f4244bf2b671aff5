"""``TaggerConfig``: the one place that holds a tagger's architecture defaults."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping

from mcrf import __version__
from mcrf.errors import ConfigError
from mcrf.fields import choice, number, option, scheme_name, text, validate

__all__ = ["TaggerConfig", "DECODERS", "POSTPROCESS"]

DECODERS = ("mcrf", "mcrf-decoding", "crf", "softmax")
POSTPROCESS = ("retain", "discard")



def _labels(name: str, value: Any) -> List[str]:
    if isinstance(value, (str, bytes)) or not all(isinstance(x, str) for x in value):
        raise ConfigError(f"expected {name} to be a list of tag strings, got {value!r}")
    labels = list(value)
    if not labels:
        raise ConfigError(f"expected a non-empty {name} list (e.g. corpus.labels), got []")
    duplicates = sorted({x for x in labels if labels.count(x) > 1})
    if duplicates:
        raise ConfigError(f"expected unique {name}, got duplicates {duplicates}")
    return labels


def _options(name: str, value: Any) -> Dict[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ConfigError(f"expected {name} to be a dict of the encoder's options, got {value!r}")
    return dict(value)


@dataclass
class TaggerConfig:
    """Architecture of a tagger (everything needed to rebuild it before loading weights).

    The encoder's own settings (BiLSTM sizes, the sub-word window of a Hugging Face encoder, ...) are
    in ``encoder_options``, checked by the encoder's ``Options`` dataclass (``mcrf.models.encoders``);
    unset options take its defaults, and the built tagger's config holds them all (``Encoder.complete``).
    """

    encoder: str = option("bilstm", check=text(what="'bilstm', 'frozen:NAME_OR_PATH' or a Hugging Face "
                                                 "model name/path"), help=(
        "encoder: bilstm (word embeddings + char CNN + BiLSTM, trained from scratch), "
        "frozen:NAME_OR_PATH (a frozen Hugging Face encoder under a trained BiLSTM), or a Hugging Face "
        "model name/path (fine-tuned)"))
    labels: List[str] = option(default_factory=list, check=_labels, cli=False, help=(
        "tag inventory; row i of the emission matrix scores labels[i]"))
    scheme: str = option("BIO", check=scheme_name(), cli=False, help="tag scheme of the labels")
    decoder: str = option("mcrf", check=choice(DECODERS), help=(
        "mcrf (masked CRF in training and decoding), mcrf-decoding (plain CRF training, masked Viterbi), "
        "crf (plain CRF) or softmax (per-word argmax)"))
    postprocess: str = option("retain", check=choice(POSTPROCESS), help=(
        "how crf/softmax outputs that break the scheme are made legal: retain (conlleval: an orphan I-X "
        "starts an entity) or discard (orphan segments become O); the masked decoders need none"))
    dropout: float = option(0.1, check=number(0, 1, high_open=True), help="dropout before the tag-score layer")
    encoder_options: Dict[str, Any] = option(default_factory=dict, check=_options, cli=False, help=(
        "the encoder's own architecture options (see its Options dataclass)"))
    mcrf_version: str = option(__version__, cli=False, help="version of mcrf that created the tagger")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every field; raise ``ConfigError`` naming the field and the fix."""
        validate(self)
        from mcrf.crf.schemes import check_labels

        try:
            check_labels(self.labels, self.scheme)  # tags of the scheme that can tag every entity type
        except ValueError as error:
            raise ConfigError(f"labels do not fit scheme {self.scheme}: {error}") from None

    def to_dict(self) -> Dict[str, Any]:
        """Plain JSON-ready dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TaggerConfig":
        """Build from ``to_dict`` output; unknown keys are an error (they mean a typo or a newer format).

        Raises:
            ConfigError: ``data`` is not a mapping, has unknown keys or invalid values.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"expected a dict of TaggerConfig fields, got {type(data).__name__}")
        values = dict(data)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"unknown TaggerConfig keys {unknown}; expected a subset of {sorted(known)} "
                "(was the model saved by a newer mcrf? upgrade mcrf)"
            )
        return cls(**values)
