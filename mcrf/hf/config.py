"""``MaskedCRFConfig``: the Hugging Face config of a masked-CRF token classifier.

It holds the backbone's own config (a plain dict, as ``PretrainedConfig.to_dict`` writes it), the
labels (the usual ``id2label``/``label2id``), the tag scheme, the CRF mode, the dropout before the
tag-score layer and the sub-word window in which the ``"mcrf-token-classification"`` pipeline reads long
sentences. ``check_config`` completes the scheme from the labels and checks that they fit.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from transformers import PretrainedConfig

from mcrf.errors import ConfigError

__all__ = ["MODEL_TYPE", "MaskedCRFConfig", "check_config"]

#: ``model_type`` in ``config.json``; ``AutoConfig`` maps it to ``MaskedCRFConfig`` once ``mcrf.hf`` is imported.
MODEL_TYPE = "mcrf-token-classification"
MODES = ("mcrf", "mcrf-decoding", "crf")


class MaskedCRFConfig(PretrainedConfig):
    """Config of ``MaskedCRFForTokenClassification``.

    Args:
        backbone_config: the backbone's config as a dict (with its ``model_type``), e.g.
            ``AutoConfig.from_pretrained("bert-base-cased").to_dict()``.
        scheme: tag scheme of the labels (``"BIO"``, ``"BIOES"``, ...); ``None``: detected from the
            labels when the model is built.
        mode: ``"mcrf"`` (illegal transitions masked in training and decoding), ``"mcrf-decoding"``
            (plain CRF training, masked Viterbi) or ``"crf"`` (no constraints).
        classifier_dropout: dropout before the tag-score layer.
        encoder_name: where the backbone came from (hub id or folder), for the model card and conversion.
        window_size: the pipeline's window in sub-words, special tokens included (``mcrf train
            --max-length``); a longer sentence is read in overlapping windows, as ``mcrf predict`` reads it.
            ``None``: the backbone's and the tokenizer's limit. ``mcrf convert`` carries the mcrf model's.
        window_stride: sub-words of overlap between those windows (``--stride``); ``None``: a quarter of
            the window.
        postprocess: how the pipeline makes a path that breaks the scheme legal, as ``mcrf predict`` does
            (``mcrf train --postprocess``): ``"retain"`` (an orphan ``I-X`` starts an entity) or
            ``"discard"`` (orphan segments become ``O``). Only mode ``"crf"`` gives such paths.
        **kwargs: ``PretrainedConfig`` arguments, above all ``id2label`` and ``label2id``.
    """

    model_type = MODEL_TYPE

    def __init__(self, backbone_config: Optional[Dict[str, Any]] = None, scheme: Optional[str] = None,
                 mode: str = "mcrf", classifier_dropout: float = 0.1, encoder_name: Optional[str] = None,
                 window_size: Optional[int] = None, window_stride: Optional[int] = None,
                 postprocess: str = "retain", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.backbone_config = dict(backbone_config) if backbone_config is not None else None
        self.scheme = scheme
        self.mode = mode
        self.classifier_dropout = classifier_dropout
        self.encoder_name = encoder_name
        self.window_size = window_size
        self.window_stride = window_stride
        self.postprocess = postprocess

    @property
    def labels(self) -> List[str]:
        """The label strings in id order."""
        return [self.id2label[i] for i in range(len(self.id2label))]


def check_config(config: MaskedCRFConfig) -> None:
    """Check ``config`` and fill in a missing scheme from the labels (canonical name).

    Raises:
        ConfigError: no backbone config, an unknown mode, labels not numbered 0..K-1, no scheme
            fitting the labels, or a given scheme the labels do not fit.
    """
    from mcrf.crf import schemes
    from mcrf.models.config import POSTPROCESS

    if not isinstance(config.backbone_config, dict) or not config.backbone_config.get("model_type"):
        raise ConfigError("MaskedCRFConfig has no backbone_config with a model_type; build the model with "
                          "MaskedCRFForTokenClassification.from_pretrained(<backbone>, id2label=...)")
    if config.mode not in MODES:
        raise ConfigError(f"expected mode in {MODES}, got {config.mode!r}")
    if config.postprocess not in POSTPROCESS:
        raise ConfigError(f"expected postprocess in {POSTPROCESS}, got {config.postprocess!r}")
    for name, low in (("window_size", 2), ("window_stride", 0)):
        value = getattr(config, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise ConfigError(f"expected {name} to be an integer >= {low} or None, got {value!r}")
    window, overlap = config.window_size, config.window_stride
    if window is not None and overlap is not None and overlap >= window:
        raise ConfigError(f"expected window_stride < window_size={window}, got window_stride={overlap}")
    ids = sorted(int(i) for i in config.id2label)
    if ids != list(range(len(ids))):
        raise ConfigError(f"expected id2label to number the labels 0..{len(ids) - 1}, got ids {ids}")
    labels = config.labels
    hint = "pass id2label={0: 'O', 1: 'B-PER', ...} (and label2id) with the data's tags"
    if all(label.startswith("LABEL_") for label in labels):
        raise ConfigError(f"the config has only the placeholder labels {labels} (num_labels alone names no tags, "
                          f"and the CRF's constraints come from the tag names); {hint}")
    try:
        scheme = schemes.canonical_scheme(config.scheme) if config.scheme else schemes.detect_scheme(labels)
        schemes.check_labels(labels, scheme)  # every label a tag of the scheme, every entity type taggable
    except (TypeError, ValueError) as error:
        given = f"scheme {config.scheme!r}" if config.scheme else "any scheme"
        raise ConfigError(f"the labels {labels} do not fit {given}: {error}") from None
    config.scheme = scheme
