"""``MaskedCRF``: a masked linear-chain CRF, drop-in for pytorch-crf's ``CRF``.

The Masked CRF (Wei, Qi, He & Sun, NAACL 2021) forbids every transition that the tag
scheme makes illegal (``O -> I-PER``, a sequence opening with ``I-``) in the training
objective (gold score *and* partition function) and in Viterbi decoding, so probability
mass never flows to illegal paths and none can be decoded.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from mcrf import crf_ops
from mcrf.crf_ops import FORBIDDEN_SCORE
from mcrf.viterbi import viterbi_kbest

MODES = ("mcrf", "mcrf-decoding", "crf")
REDUCTIONS = ("none", "sum", "mean", "token_mean")


_tracing = crf_ops.tracing


class MaskedCRF(nn.Module):
    """Linear-chain CRF whose illegal transitions are masked out.

    Parameter names and shapes equal pytorch-crf's ``CRF`` (``start_transitions (K,)``,
    ``end_transitions (K,)``, ``transitions (K, K)`` indexed ``[from, to]``), so its
    ``state_dict`` loads as is, and ``forward`` returns the log-likelihood like it does.

    Args:
        num_tags: number of tags ``K``.
        batch_first: whether inputs are ``(batch, seq, ...)`` (else ``(seq, batch, ...)``).
        labels: tag strings in index order; with ``scheme`` they define the constraints.
        scheme: tag scheme (``"BIO"``, ``"BIOES"``, ``"IOB1"``, ...); detected from
            ``labels`` when omitted.
        mode: ``"mcrf"`` (constraints in training and decoding), ``"mcrf-decoding"``
            (constraints in decoding only) or ``"crf"`` (no constraints).
        allowed_start: optional explicit ``(K,)`` bool table (instead of labels/scheme).
        allowed_transitions: optional explicit ``(K, K)`` bool table ``[from, to]``.
        allowed_end: optional explicit ``(K,)`` bool table.

    Example:
        >>> crf = MaskedCRF(3, batch_first=True, labels=["O", "B-PER", "I-PER"], scheme="BIO")
        >>> emissions = torch.zeros(1, 2, 3)
        >>> emissions[0, 0, 2] = 5.0  # the emissions push for an illegal opening I-PER
        >>> crf.decode(emissions)[0][0] != 2
        True
    """

    def __init__(
        self,
        num_tags: int,
        batch_first: bool = False,
        *,
        labels: Optional[Sequence[str]] = None,
        scheme: Optional[str] = None,
        mode: str = "mcrf",
        allowed_start: Optional[Tensor] = None,
        allowed_transitions: Optional[Tensor] = None,
        allowed_end: Optional[Tensor] = None,
    ) -> None:
        if not isinstance(num_tags, int) or num_tags <= 0:
            raise ValueError(f"invalid number of tags: expected a positive int, got {num_tags!r}")
        if mode not in MODES:
            raise ValueError(f"invalid mode: expected one of {MODES}, got {mode!r}")
        super().__init__()
        self.num_tags = num_tags
        self.batch_first = batch_first
        self.mode = mode
        self.labels = list(labels) if labels is not None else None
        self.scheme = None
        self.start_transitions = nn.Parameter(torch.empty(num_tags))
        self.end_transitions = nn.Parameter(torch.empty(num_tags))
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags))
        start, trans, end = self._constraints(labels, scheme, allowed_start, allowed_transitions, allowed_end)
        # Not in the state_dict: they follow from labels/scheme, and pytorch-crf dicts must load.
        self.register_buffer("allowed_start", start, persistent=False)
        self.register_buffer("allowed_transitions", trans, persistent=False)
        self.register_buffer("allowed_end", end, persistent=False)
        self.reset_parameters()

    def _constraints(self, labels, scheme, start, trans, end) -> Tuple[Tensor, Tensor, Tensor]:
        k = self.num_tags
        explicit = [t is not None for t in (start, trans, end)]
        if any(explicit) and labels is not None and scheme is not None:
            raise ValueError("expected either labels/scheme or explicit allowed_* tables, got both")
        if labels is not None and not any(explicit):
            from mcrf import schemes

            if len(self.labels) != k:
                raise ValueError(f"expected {k} labels (num_tags), got {len(self.labels)}: {self.labels}")
            self.scheme = schemes.canonical_scheme(scheme) if scheme else schemes.detect_scheme(self.labels)
            tables = schemes.allowed_transitions(self.labels, self.scheme)
            start, trans, end = tables.start, tables.transitions, tables.end
        elif scheme is not None and labels is None:
            raise ValueError(f"scheme={scheme!r} needs labels: pass labels=[...] in tag-index order")
        shapes = {"allowed_start": (k,), "allowed_transitions": (k, k), "allowed_end": (k,)}
        out = []
        for name, table in zip(shapes, (start, trans, end)):
            if table is None:
                out.append(torch.ones(shapes[name], dtype=torch.bool))
                continue
            table = torch.as_tensor(table)
            if table.dtype != torch.bool:
                raise TypeError(f"{name} must be a bool tensor, got dtype {table.dtype}")
            if tuple(table.shape) != shapes[name]:
                raise ValueError(f"{name}: expected shape {shapes[name]}, got {tuple(table.shape)}")
            out.append(table.clone())
        return out[0], out[1], out[2]

    def reset_parameters(self) -> None:
        """Initialise all scores uniformly in (-0.1, 0.1), as pytorch-crf does."""
        nn.init.uniform_(self.start_transitions, -0.1, 0.1)
        nn.init.uniform_(self.end_transitions, -0.1, 0.1)
        nn.init.uniform_(self.transitions, -0.1, 0.1)

    def extra_repr(self) -> str:
        return f"num_tags={self.num_tags}, mode={self.mode!r}, scheme={self.scheme!r}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"

    # ------------------------------------------------------------------ constraints
    def _tables(self, train: bool) -> Tuple[Tensor, Tensor, Tensor]:
        """The constraint tables in force for training (``train``) or decoding."""
        if self.mode == "crf" or (train and self.mode == "mcrf-decoding"):
            ones = self.allowed_transitions.new_ones
            return ones(self.num_tags), ones(self.num_tags, self.num_tags), ones(self.num_tags)
        return self.allowed_start, self.allowed_transitions, self.allowed_end

    def masked_transitions(self) -> Tuple[Tensor, Tensor, Tensor]:
        """Start, transition and end scores with forbidden entries set to ``FORBIDDEN_SCORE``.

        For inspection and export to decoders that take one score matrix; the layer's own
        computations exclude forbidden transitions exactly.
        """
        start, trans, end = self._tables(train=False)
        fill = torch.tensor(FORBIDDEN_SCORE, dtype=self.transitions.dtype, device=self.transitions.device)
        return (
            torch.where(start, self.start_transitions, fill),
            torch.where(trans, self.transitions, fill),
            torch.where(end, self.end_transitions, fill),
        )

    def _chain(self, train: bool, dtype: torch.dtype) -> crf_ops.Chain:
        """Scores (in the computation dtype) and the rules in force for training or decoding."""
        return crf_ops.Chain(
            self.start_transitions.to(dtype),
            self.transitions.to(dtype),
            self.end_transitions.to(dtype),
            *self._tables(train),
        )

    # ------------------------------------------------------------------ validation
    def _prepare(self, emissions: Tensor, tags: Optional[Tensor], mask: Optional[Tensor]):
        """Validate and convert to batch-first float32 emissions, long tags, bool mask."""
        if not isinstance(emissions, Tensor):
            raise TypeError(f"emissions must be a torch.Tensor, got {type(emissions).__name__}")
        if emissions.dim() != 3:
            raise ValueError(f"emissions must have dimension of 3, got {emissions.dim()}")
        if not emissions.is_floating_point():
            raise TypeError(f"emissions must be a floating point tensor, got dtype {emissions.dtype}")
        if emissions.size(2) != self.num_tags:
            raise ValueError(f"expected last dimension of emissions is {self.num_tags}, got {emissions.size(2)}")
        lead = tuple(emissions.shape[:2])
        if tags is not None:
            if not isinstance(tags, Tensor):
                raise TypeError(f"tags must be a torch.Tensor, got {type(tags).__name__}")
            if tuple(tags.shape) != lead:
                raise ValueError(
                    "the first two dimensions of emissions and tags must match, "
                    f"got {lead} and {tuple(tags.shape)}"
                )
            if tags.is_floating_point() or tags.dtype == torch.bool or tags.is_complex():
                raise TypeError(f"tags must be an integer tensor (torch.long), got dtype {tags.dtype}")
        if mask is None:
            mask = torch.ones(lead, dtype=torch.bool, device=emissions.device)
        else:
            if not isinstance(mask, Tensor):
                raise TypeError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
            if tuple(mask.shape) != lead:
                raise ValueError(
                    f"the shape of emissions and mask must match, got {lead} and {tuple(mask.shape)}"
                )
            if mask.dtype != torch.bool:
                if mask.is_floating_point() or mask.is_complex():
                    raise TypeError(
                        f"mask must be bool (or an integer tensor of 0/1), got dtype {mask.dtype}; "
                        "use mask.bool() if it holds 0.0/1.0"
                    )
                if not _tracing() and mask.numel() and not ((mask == 0) | (mask == 1)).all():
                    bad = mask[(mask != 0) & (mask != 1)][0].item()
                    raise ValueError(f"an integer mask must hold only 0 and 1, got value {bad}")
                mask = mask != 0
        if not self.batch_first:
            emissions = emissions.transpose(0, 1)
            mask = mask.transpose(0, 1)
            tags = tags.transpose(0, 1) if tags is not None else None
        # float32 at least (fp16/bf16 are upcast); float64 stays float64 (gradcheck).
        emissions = emissions.to(torch.promote_types(emissions.dtype, torch.float32))
        if not _tracing():
            # One cheap reduction first; the exact check only when the sum is not finite.
            if not torch.isfinite(emissions.sum()) and not torch.isfinite(emissions).all():
                kind = "NaN" if torch.isnan(emissions).any() else "infinite"
                raise ValueError(f"emissions contain {kind} values; expected finite scores")
            if tags is not None:
                out = mask & ((tags < 0) | (tags >= self.num_tags))
                if out.any():
                    b, t = out.nonzero()[0].tolist()
                    raise ValueError(
                        f"tags must be in [0, {self.num_tags}) at unmasked positions, got "
                        f"{tags[b, t].item()} at batch index {b}, position {t}"
                    )
        return emissions, (tags.long() if tags is not None else None), mask

    def _packed(self, emissions: Tensor, mask: Tensor, tags: Optional[Tensor] = None):
        """Pack unmasked positions to the front; trim to the longest sequence in eager mode.

        Right-padded masks (the common case) are already packed: no sort, no gather.
        """
        if not _tracing() and bool((mask[:, 1:] <= mask[:, :-1]).all()):
            lengths = mask.sum(dim=1)  # shape: (B,)
            keep = max(int(lengths.max()) if lengths.numel() else 0, 1)
            order = torch.arange(mask.shape[1], device=mask.device).expand(mask.shape[0], -1)[:, :keep]
            packed = emissions[:, :keep]  # shape: (B, L, K)
        else:
            order, lengths = crf_ops.pack(mask)
            if not _tracing() and order.shape[1] > 1:
                keep = max(int(lengths.max()) if lengths.numel() else 0, 1)
                order = order[:, :keep]
            packed = crf_ops.gather_time(emissions, order)  # shape: (B, L, K)
        packed_tags = None
        if tags is not None:
            valid = crf_ops.valid_positions(lengths, order.shape[1])
            packed_tags = torch.where(valid, tags.gather(1, order), torch.zeros_like(order))  # shape: (B, L)
        return packed, lengths, order, packed_tags

    def _check_gold(self, tags: Tensor, lengths: Tensor, order: Tensor, chain: crf_ops.Chain) -> None:
        bad = crf_ops.first_violation(tags, lengths, chain)
        if not bad.any():
            return
        b, s = bad.nonzero()[0].tolist()
        name = (lambda i: self.labels[i]) if self.labels else (lambda i: str(i))
        pos = int(order[b, s])
        if s == 0 and not bool(chain.allowed_start[tags[b, 0]]):
            what = f"sequence starts with {name(int(tags[b, 0]))!r}"
        elif s > 0 and not bool(chain.allowed_trans[tags[b, s - 1], tags[b, s]]):
            what = f"transition {name(int(tags[b, s - 1]))!r} -> {name(int(tags[b, s]))!r}"
        else:
            what = f"sequence ends with {name(int(tags[b, s]))!r}"
        raise ValueError(
            f"illegal gold tag sequence at batch index {b}, position {pos}: {what} is forbidden "
            f"by the {self.scheme or 'given'} constraints (its likelihood is zero under mode='mcrf'); "
            "repair the data (e.g. mcrf.schemes.repair) or use mode='mcrf-decoding'"
        )

    # ------------------------------------------------------------------ training
    def forward(
        self, emissions: Tensor, tags: Tensor, mask: Optional[Tensor] = None, reduction: str = "sum"
    ) -> Tensor:
        """Log-likelihood of ``tags`` given ``emissions`` (exactly like pytorch-crf's ``CRF``).

        Args:
            emissions: ``(B, T, K)`` if ``batch_first`` else ``(T, B, K)``, any float dtype.
            tags: ``(B, T)`` (or ``(T, B)``) long; values at masked positions are ignored.
            mask: ``(B, T)`` (or ``(T, B)``) bool or 0/1 integer; ``None`` means all on.
            reduction: ``"none"`` -> ``(B,)``, ``"sum"``, ``"mean"`` (over sequences) or
                ``"token_mean"`` (over unmasked tokens).

        Returns:
            The log-likelihood (float32), reduced as asked.
        """
        if reduction not in REDUCTIONS:
            raise ValueError(f"invalid reduction: expected one of {REDUCTIONS}, got {reduction!r}")
        emissions, tags, mask = self._prepare(emissions, tags, mask)
        with torch.autocast(device_type=emissions.device.type, enabled=False):
            packed, lengths, order, packed_tags = self._packed(emissions, mask, tags)
            chain = self._chain(train=True, dtype=packed.dtype)
            if self.mode == "mcrf" and not _tracing():
                self._check_gold(packed_tags, lengths, order, chain)
            gold = crf_ops.path_score(packed, packed_tags, lengths, chain)
            log_z = crf_ops.log_partition(packed, lengths, chain)
            llh = gold - log_z  # shape: (B,)
        if reduction == "none":
            return llh
        if reduction == "sum":
            return llh.sum()
        if reduction == "mean":
            return llh.mean()
        return llh.sum() / mask.sum().clamp(min=1).float()

    def loss(
        self, emissions: Tensor, tags: Tensor, mask: Optional[Tensor] = None, reduction: str = "mean"
    ) -> Tensor:
        """Negative log-likelihood, ready to minimise (``-forward(...)``); default ``"mean"``."""
        return -self.forward(emissions, tags, mask=mask, reduction=reduction)

    # ------------------------------------------------------------------ inference
    def _viterbi_packed(self, emissions: Tensor, mask: Optional[Tensor], k: int):
        emissions, _, mask = self._prepare(emissions, None, mask)
        with torch.autocast(device_type=emissions.device.type, enabled=False):
            packed, lengths, order, _ = self._packed(emissions, mask)
            paths, scores = viterbi_kbest(packed, lengths, self._chain(train=False, dtype=packed.dtype), k=k)  # shape: (B, k, L), (B, k)
        return paths, scores, lengths, order, mask

    @torch.no_grad()
    def viterbi(self, emissions: Tensor, mask: Optional[Tensor] = None, k: int = 1) -> Tuple[Tensor, Tensor]:
        """The ``k`` best legal tag paths and their scores.

        Args:
            emissions: ``(B, T, K)`` (or ``(T, B, K)`` without ``batch_first``).
            mask: bool or 0/1 mask of the same leading shape; ``None`` means all on.
            k: number of paths per sequence.

        Returns:
            ``(paths, scores)``: ``paths`` long ``(B, k, T)`` (``(T, B, k)`` without
            ``batch_first``) aligned to the input positions, ``-1`` at masked positions and for
            missing paths; ``scores (B, k)``, best first, ``-inf`` where fewer than ``k``
            legal paths exist.
        """
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        paths, scores, lengths, order, mask = self._viterbi_packed(emissions, mask, k)
        paths = torch.where(torch.isfinite(scores).unsqueeze(2), paths, torch.full_like(paths, -1))
        out = crf_ops.unpack(paths.transpose(1, 2), order, lengths, mask.shape[1], fill=-1).transpose(1, 2)  # shape: (B, k, T)
        if not self.batch_first:
            out = out.permute(2, 0, 1)
        return out, scores

    @torch.no_grad()
    def decode(self, emissions: Tensor, mask: Optional[Tensor] = None) -> List[List[int]]:
        """Best legal tag sequence of each input, as pytorch-crf's ``decode`` returns it.

        Returns:
            One list of tag indices per sequence, holding only its unmasked positions.

        Raises:
            ValueError: when a sequence has no legal path at all under explicit constraints.
        """
        paths, scores, lengths, _, _ = self._viterbi_packed(emissions, mask, 1)
        if not torch.isfinite(scores).all():
            b = int((~torch.isfinite(scores[:, 0])).nonzero()[0])
            raise ValueError(
                f"sequence at batch index {b} has no legal tag path under the constraints; "
                "check allowed_start/allowed_transitions/allowed_end"
            )
        return [row[:n] for row, n in zip(paths[:, 0].tolist(), lengths.tolist())]

    @torch.no_grad()
    def marginals(self, emissions: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """Posterior probability of each tag at each position, over legal paths only.

        Returns:
            ``(B, T, K)`` (``(T, B, K)`` without ``batch_first``) float32; rows sum to 1 at
            unmasked positions and are 0 at masked positions.
        """
        emissions, _, mask = self._prepare(emissions, None, mask)
        with torch.autocast(device_type=emissions.device.type, enabled=False):
            packed, lengths, order, _ = self._packed(emissions, mask)
            marg = crf_ops.marginals(packed, lengths, self._chain(train=False, dtype=packed.dtype))
        out = crf_ops.unpack(marg, order, lengths, mask.shape[1], fill=0.0)  # shape: (B, T, K)
        if not self.batch_first:
            out = out.transpose(0, 1)
        return out
