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

from mcrf.crf import checks as crf_checks, ops as crf_ops, scan as crf_scan
from mcrf.crf.numerics import FORBIDDEN_SCORE
from mcrf.crf.viterbi import viterbi_kbest

MODES = ("mcrf", "mcrf-decoding", "crf")
ALGORITHMS = ("auto", "scan", "sequential")
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
        validate: check the data on every call (finite emissions, tags in range, 0/1
            integer masks, legal gold tags under ``"mcrf"``, finite CRF parameters) and trim
            padding past the longest sequence. Each check reads a value back to the host (a
            device synchronisation on a GPU). ``False``: no host reads beyond what a result
            itself needs (``decode`` returns lists: one); use it once the data layer has
            checked the data. Shapes and dtypes are checked either way (they cost nothing).
        algorithm: ``"sequential"`` (one step per position), ``"scan"`` (log-depth parallel
            scan, :mod:`mcrf.crf.scan`) or ``"auto"``: per call, the faster one for the
            shape and the device type by a measured rule (``crf_scan.use_scan``; docs/crf.md).
            Both give the same results.

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
        validate: bool = True,
        algorithm: str = "auto",
    ) -> None:
        if not isinstance(num_tags, int) or isinstance(num_tags, bool) or num_tags <= 0:
            # pytorch-crf's message first (code may match it), then ours
            raise ValueError(f"invalid number of tags: {num_tags}; expected a positive int, got {num_tags!r}")
        if mode not in MODES:
            raise ValueError(f"invalid mode: expected one of {MODES}, got {mode!r}")
        if algorithm not in ALGORITHMS:
            raise ValueError(f"invalid algorithm: expected one of {ALGORITHMS}, got {algorithm!r}")
        super().__init__()
        self.num_tags = num_tags
        self.batch_first = batch_first
        self.mode = mode
        self.validate = bool(validate)
        self.algorithm = algorithm
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
            from mcrf.crf import schemes

            if len(self.labels) != k:
                raise ValueError(f"expected {k} labels (num_tags), got {len(self.labels)}: {self.labels}")
            self.scheme = schemes.canonical_scheme(scheme) if scheme else schemes.detect_scheme(self.labels)
            tables = schemes.check_labels(self.labels, self.scheme)  # every entity type can open and close
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
        return (
            torch.where(start, self.start_transitions, FORBIDDEN_SCORE),
            torch.where(trans, self.transitions, FORBIDDEN_SCORE),
            torch.where(end, self.end_transitions, FORBIDDEN_SCORE),
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
    def check_parameters(self) -> None:
        """Raise a ``ValueError`` naming the first CRF parameter that holds NaN or infinity.

        Runs on every call when ``validate=True``; with ``validate=False`` call it from the
        training loop (e.g. once per evaluation): it reads one value back to the host.
        """
        crf_checks.check_parameters(self)

    def _prepare(self, emissions: Tensor, tags: Optional[Tensor], mask: Optional[Tensor], checking: bool):
        return crf_checks.prepare(self, emissions, tags, mask, checking)

    def _scan(self, packed: Tensor, decode: bool) -> bool:
        """Whether the log-depth scan runs for these packed ``(B, L, K)`` emissions."""
        if self.algorithm != "auto":
            return self.algorithm == "scan"
        return crf_scan.use_scan(packed.shape[0], packed.shape[1], packed.shape[2], decode, packed.device.type)

    def _checking(self, validate: Optional[bool]) -> bool:
        """Whether data-dependent checks (host reads) run: ``validate`` (the call's, else the
        layer's) and not tracing."""
        return (self.validate if validate is None else bool(validate)) and not _tracing()

    def _packed(self, emissions: Tensor, mask: Tensor, tags: Optional[Tensor] = None, checking: bool = True):
        """Pack unmasked positions to the front; trim to the longest sequence in eager mode.

        Right-padded masks (the common case) are already packed: no sort, no gather.
        """
        if checking and bool((mask[:, 1:] <= mask[:, :-1]).all()):
            lengths = mask.sum(dim=1)  # shape: (B,)
            keep = max(int(lengths.max()) if lengths.numel() else 0, 1)
            order = torch.arange(mask.shape[1], device=mask.device).expand(mask.shape[0], -1)[:, :keep]
            packed = emissions[:, :keep]  # shape: (B, L, K)
        else:
            order, lengths = crf_ops.pack(mask)
            if checking and order.shape[1] > 1:
                keep = max(int(lengths.max()) if lengths.numel() else 0, 1)
                order = order[:, :keep]
            packed = crf_ops.gather_time(emissions, order)  # shape: (B, L, K)
        packed_tags = None
        if tags is not None:
            valid = crf_ops.valid_positions(lengths, order.shape[1])
            packed_tags = torch.where(valid, tags.gather(1, order), torch.zeros_like(order))  # shape: (B, L)
        return packed, lengths, order, packed_tags

    # ------------------------------------------------------------------ training
    def forward(
        self, emissions: Tensor, tags: Tensor, mask: Optional[Tensor] = None, reduction: str = "sum",
        *, validate: Optional[bool] = None,
    ) -> Tensor:
        """Log-likelihood of ``tags`` given ``emissions`` (exactly like pytorch-crf's ``CRF``).

        Args:
            emissions: ``(B, T, K)`` if ``batch_first`` else ``(T, B, K)``, any float dtype.
            tags: ``(B, T)`` (or ``(T, B)``) long; values at masked positions are ignored.
            mask: ``(B, T)`` (or ``(T, B)``) bool or 0/1 integer; ``None`` means all on.
            reduction: ``"none"`` -> ``(B,)``, ``"sum"``, ``"mean"`` (over sequences) or
                ``"token_mean"`` (over unmasked tokens). An empty batch (``B = 0``) gives 0
                for every reduction but ``"none"``; an empty sequence (all masked, or
                ``T = 0``) has log-likelihood 0.
            validate: this call's checks (``None``: the layer's ``validate``).

        Returns:
            The log-likelihood (float32), reduced as asked. With ``validate=False`` an illegal
            gold sequence under ``mode="mcrf"`` gets ``-inf`` (its likelihood is zero)
            instead of an error.
        """
        if reduction not in REDUCTIONS:
            # pytorch-crf's message first (code may match it), then ours
            raise ValueError(f"invalid reduction: {reduction}; expected one of {REDUCTIONS}")
        checking = self._checking(validate)
        emissions, tags, mask = self._prepare(emissions, tags, mask, checking)
        with torch.autocast(device_type=emissions.device.type, enabled=False):
            if emissions.shape[1] == 0:  # T = 0: every sequence is empty (grad-connected zeros)
                llh = emissions.sum(dim=(1, 2))  # shape: (B,)
            else:
                llh = self._log_likelihood(emissions, tags, mask, checking)  # shape: (B,)
        if reduction == "none":
            return llh
        if reduction == "sum":
            return llh.sum()
        if reduction == "mean":  # the batch size is static: no division by a zero count, no host read
            return llh.sum() / max(llh.shape[0], 1)
        return llh.sum() / mask.sum().clamp(min=1).float()

    def _log_likelihood(self, emissions: Tensor, tags: Tensor, mask: Tensor, checking: bool) -> Tensor:
        packed, lengths, order, packed_tags = self._packed(emissions, mask, tags, checking)
        chain = self._chain(train=True, dtype=packed.dtype)
        if self.mode == "mcrf" and checking:
            crf_checks.check_gold(self, packed_tags, lengths, order, chain)
        gold = crf_ops.path_score(packed, packed_tags, lengths, chain)
        log_z = crf_ops.log_partition(packed, lengths, chain, sync_free=not checking, scan=self._scan(packed, False))
        llh = gold - log_z  # shape: (B,)
        if self.mode == "mcrf" and not checking:
            illegal = crf_ops.first_violation(packed_tags, lengths, chain).any(dim=1)  # shape: (B,)
            llh = torch.where(illegal, float("-inf"), llh)
        return llh

    def loss(
        self, emissions: Tensor, tags: Tensor, mask: Optional[Tensor] = None, reduction: str = "mean",
        *, validate: Optional[bool] = None,
    ) -> Tensor:
        """Negative log-likelihood, ready to minimise (``-forward(...)``); default ``"mean"``."""
        return -self.forward(emissions, tags, mask=mask, reduction=reduction, validate=validate)

    # ------------------------------------------------------------------ inference
    def _viterbi_packed(self, emissions: Tensor, mask: Optional[Tensor], k: int, validate: Optional[bool]):
        checking = self._checking(validate)
        emissions, _, mask = self._prepare(emissions, None, mask, checking)
        batch, steps = mask.shape
        if steps == 0:  # T = 0: one empty path of score 0 per sequence
            rank = torch.arange(k, device=mask.device).expand(batch, k)
            scores = torch.where(rank == 0, 0.0, float("-inf")).to(emissions.dtype)  # shape: (B, k)
            order = mask.new_zeros((batch, 0), dtype=torch.long)
            return order.new_zeros((batch, k, 0)), scores, order.new_zeros(batch), order, mask
        with torch.autocast(device_type=emissions.device.type, enabled=False):
            packed, lengths, order, _ = self._packed(emissions, mask, checking=checking)
            chain = self._chain(train=False, dtype=packed.dtype)
            scan = self._scan(packed, True)
            paths, scores = viterbi_kbest(packed, lengths, chain, k, scan, sync_free=not checking)  # shape: (B, k, L), (B, k)
        return paths, scores, lengths, order, mask

    @torch.no_grad()
    def viterbi(
        self, emissions: Tensor, mask: Optional[Tensor] = None, k: int = 1, *, validate: Optional[bool] = None
    ) -> Tuple[Tensor, Tensor]:
        """The ``k`` best legal tag paths and their scores.

        Args:
            emissions: ``(B, T, K)`` (or ``(T, B, K)`` without ``batch_first``).
            mask: bool or 0/1 mask of the same leading shape; ``None`` means all on.
            k: number of paths per sequence.
            validate: this call's checks (``None``: the layer's ``validate``); likewise for
                ``decode`` and ``marginals``.

        Returns:
            ``(paths, scores)``: ``paths`` long ``(B, k, T)`` (``(T, B, k)`` without
            ``batch_first``) aligned to the input positions, ``-1`` at masked positions and for
            missing paths; ``scores (B, k)``, best first, ``-inf`` where fewer than ``k``
            legal paths exist.
        """
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        paths, scores, lengths, order, mask = self._viterbi_packed(emissions, mask, k, validate)
        paths = torch.where(torch.isfinite(scores).unsqueeze(2), paths, torch.full_like(paths, -1))
        out = crf_ops.unpack(paths.transpose(1, 2), order, lengths, mask.shape[1], fill=-1).transpose(1, 2)  # shape: (B, k, T)
        if not self.batch_first:
            out = out.permute(2, 0, 1)
        return out, scores

    @torch.no_grad()
    def decode(
        self, emissions: Tensor, mask: Optional[Tensor] = None, *, validate: Optional[bool] = None
    ) -> List[List[int]]:
        """Best legal tag sequence of each input, as pytorch-crf's ``decode`` returns it.

        Returns:
            One list of tag indices per sequence, holding only its unmasked positions.

        Raises:
            ValueError: when a sequence has no legal path at all under explicit constraints.
        """
        paths, scores, lengths, _, _ = self._viterbi_packed(emissions, mask, 1, validate)
        # one host read for everything: the paths, their lengths and whether a legal path exists
        found = torch.isfinite(scores[:, :1]).long()  # shape: (B, 1)
        rows = torch.cat([found, lengths.unsqueeze(1), paths[:, 0]], dim=1).tolist()  # shape: (B, 2 + L)
        for b, row in enumerate(rows):
            if not row[0]:
                raise ValueError(
                    f"sequence at batch index {b} has no legal tag path under the constraints; "
                    "check allowed_start/allowed_transitions/allowed_end"
                )
        return [row[2 : 2 + row[1]] for row in rows]

    @torch.no_grad()
    def marginals(
        self, emissions: Tensor, mask: Optional[Tensor] = None, *, validate: Optional[bool] = None
    ) -> Tensor:
        """Posterior probability of each tag at each position, over legal paths only.

        Returns:
            ``(B, T, K)`` (``(T, B, K)`` without ``batch_first``) float32; rows sum to 1 at
            unmasked positions and are 0 at masked positions.
        """
        checking = self._checking(validate)
        emissions, _, mask = self._prepare(emissions, None, mask, checking)
        if mask.shape[1] == 0:  # T = 0
            out = emissions.new_zeros(emissions.shape)
        else:
            with torch.autocast(device_type=emissions.device.type, enabled=False):
                packed, lengths, order, _ = self._packed(emissions, mask, checking=checking)
                chain = self._chain(train=False, dtype=packed.dtype)
                marg = crf_ops.marginals(
                    packed, lengths, chain, sync_free=not checking, scan=self._scan(packed, False)
                )
            out = crf_ops.unpack(marg, order, lengths, mask.shape[1], fill=0.0)  # shape: (B, T, K)
        if not self.batch_first:
            out = out.transpose(0, 1)
        return out
