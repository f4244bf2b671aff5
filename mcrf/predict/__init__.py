"""Prediction: stream sentences through a tagger and write them out.

- ``stream``: ``PredictConfig``, ``read_input`` and ``predict_stream`` (bounded memory, input order);
- ``distributed``: the same across processes (torchrun / accelerate launch);
- ``records``: one prediction as a JSON-ready record (tags, spans, confidences);
- ``formats``: the output formats (conll, jsonl, text, html);
- ``html``: the self-contained HTML rendering (the demo page of ``mcrf serve`` and ``--format html``).
"""
