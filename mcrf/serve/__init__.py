"""``mcrf serve``: a tagger behind HTTP with dynamic micro-batching, and its demo page.

- ``mcrf.serve.config``: ``ServeConfig``, the defaults of ``mcrf serve`` (standard library only).
- ``mcrf.serve.batcher``: ``MicroBatcher``, one worker thread that owns the model and tags
  concurrent requests together in length-sorted batches.
- ``mcrf.serve.app``: the FastAPI app (``create_app``) and the uvicorn runner (``serve``).
- ``page/``: the demo page's HTML, CSS and JavaScript, packaged (no CDN, no build step) and
  read with ``importlib.resources`` (``mcrf.predict.html``).

Only ``mcrf.serve.app`` imports FastAPI/uvicorn (the ``serve`` extra: ``pip install "mcrf[serve]"``);
``import mcrf`` and ``import mcrf.serve`` do not.
"""

from mcrf.serve.config import ServeConfig

__all__ = ["ServeConfig"]
