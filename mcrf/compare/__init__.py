"""``mcrf compare``: does masking help? Train each objective per seed, decode several ways, test the gains.

- ``variants``: the six variants (softmax/CRF + retain/discard, MCRF-decoding, MCRF) and the
  three objectives they share weights from; the paired claims.
- ``cells``: one (objective, seed) cell: train (resumable), decode every variant of it on dev/test.
- ``stats``: mean ± std, per-sentence span counts, paired approximate randomization and bootstrap.
- ``runner``: ``CompareConfig`` and ``compare(...)``: the cells in order, skipping finished ones.
- ``report``: ``results.json``/``results.md``/``results.png`` of one comparison.
- ``summary``: the cross-corpus ``README.md`` and figure over a folder of comparisons.

It sits in the training layer: it builds on ``mcrf.training.train`` and ``mcrf.evaluation``.
"""

from mcrf.compare.runner import CompareConfig, compare
from mcrf.compare.variants import OBJECTIVES, PAIRS, VARIANTS, Variant, parse_variants

__all__ = ["CompareConfig", "compare", "OBJECTIVES", "PAIRS", "VARIANTS", "Variant", "parse_variants"]
