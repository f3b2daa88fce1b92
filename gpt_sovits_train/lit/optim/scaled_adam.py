"""ScaledAdam: the optimizer GPT-SoVITS v2 trains its GPT stage with (from Zipformer, Yao et al. 2023).

Written from the paper's description and from what the reference (GPT-SoVITS 48b1a01) observably does, so that a
v2 fine-tune here follows the reference's trajectory step for step (``tests/training/test_v2_trajectory_gpt.py``).

The idea: an Adam-like update whose size is proportional to each tensor's root-mean-square value, so every tensor
moves by about the same *relative* amount whatever its scale, plus a separately learned log-scale per tensor (the
"parameter-scale update"), plus gradient clipping against a running median of recent gradient norms. In detail,
for a tensor ``p`` with more than one element, at (0-based) step ``t``::

    delta  = beta1 * delta
    every ``size_update_period`` steps (t % period == period - 1):
        rms(p) is re-measured; the scale learner takes an Adam step on sum(p * grad) (its gradient w.r.t. a
        log-scale), with beta2 ** period as its decay; the change ``p * scale_step`` enters delta (x (1 - beta1))
    v      = beta2 * v + (1 - beta2) * grad^2, bias-corrected only while 1 - beta2^(t+1) < 0.99
    delta += -lr * (1 - beta1) * max(rms(p), param_min_rms) * grad / (sqrt(v) + eps)
    p     += delta

Tensors of one element take a plain Adam step at ``lr * scalar_lr_scale`` and are clamped to ``scalar_max``.
No first-moment bias correction anywhere: the first steps are deliberately small.

Clipping: per parameter group, the norm of the gradient weighted by each tensor's stored rms is recorded every
step; every ``clipping_update_period`` steps the threshold becomes ``clipping_scale`` x the median of the last
period's norms, and from then on a step whose norm exceeds the threshold is scaled down to it. No clipping happens
before the first full period (v2 uses a period of 1000, so none in its first 1000 steps).

Behaviour kept from the reference on purpose (its trajectory is the yardstick):
- the clipping factor reaches only the parameter-scale learner; the Adam part of the update uses the unclipped
  gradient (``clip_update=True`` applies it to both, as the paper describes);
- a parameter whose gradient is None still steps, with a zero gradient (its momentum keeps moving it);
- the first step records no gradient norm.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor


class ScaledAdam(torch.optim.Optimizer):
    """Adam with updates proportional to each tensor's rms, a learned tensor scale and median-based clipping.

    Args:
        params: parameters or parameter groups.
        lr: base learning rate (v2 constructs it with 0.01; its schedule then sets 0.002 after the first step).
        betas: momentum and second-moment decay (v2: 0.9, 0.95).
        clipping_scale: clip gradient norms to this multiple of the recent median; None = no clipping (v2: 2.0).
        scalar_lr_scale: learning-rate factor of the scale learner and of one-element tensors.
        eps: added to the root of the second moment.
        param_min_rms / param_max_rms: the rms range inside which the scale learner may move a tensor.
        scalar_max: bound on one-element parameters.
        size_update_period: steps between rms measurements and scale updates.
        clipping_update_period: steps between clipping-threshold updates (v2: 1000).
        clip_update: also clip the Adam part of the update (the paper's intent; v2 does not, see module doc).

    After each ``step()``, ``last_stats`` holds per group the weighted gradient norm before clipping and the
    factor applied (1.0 = none) — the "grad norm before/after clipping" a trainer logs.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 0.03,
        betas: tuple[float, float] = (0.9, 0.98),
        clipping_scale: float | None = None,
        scalar_lr_scale: float = 0.1,
        eps: float = 1e-8,
        param_min_rms: float = 1e-5,
        param_max_rms: float = 3.0,
        scalar_max: float = 10.0,
        size_update_period: int = 4,
        clipping_update_period: int = 100,
        clip_update: bool = False,
    ) -> None:
        if not 0.0 < betas[0] <= betas[1] < 1.0:
            raise ValueError(f"ScaledAdam needs 0 < beta1 <= beta2 < 1, got betas={betas}")
        if size_update_period < 1 or clipping_update_period < 1:
            raise ValueError("size_update_period and clipping_update_period must be >= 1")
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "clipping_scale": clipping_scale,
            "scalar_lr_scale": scalar_lr_scale,
            "eps": eps,
            "param_min_rms": param_min_rms,
            "param_max_rms": param_max_rms,
            "scalar_max": scalar_max,
            "size_update_period": size_update_period,
            "clipping_update_period": clipping_update_period,
            "clip_update": clip_update,
        }
        super().__init__(params, defaults)
        self.last_stats: list[dict[str, Any]] = []

    # --- state -------------------------------------------------------------------------------------------
    def _fresh_state(self, group: dict[str, Any], p: Tensor) -> dict[str, Any]:
        state: dict[str, Any] = {
            "step": 0,
            "delta": torch.zeros_like(p, memory_format=torch.preserve_format),
            "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
        }
        if p.numel() > 1:
            state["param_rms"] = p.detach().pow(2).mean().sqrt()
            state["scale_exp_avg_sq"] = torch.zeros((), dtype=p.dtype, device=p.device)
            state["scale_grads"] = torch.zeros(group["size_update_period"], dtype=p.dtype, device=p.device)
        return state

    # --- clipping ----------------------------------------------------------------------------------------
    def _clip_factor(self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor]) -> tuple[Tensor, float]:
        """Weighted gradient norm of the group and the factor (<= 1) that clips it; records the norm."""
        sumsq = torch.zeros((), dtype=torch.float32, device=params[0].device)
        for p, g in zip(params, grads):
            state = self.state[p]
            weighted = g if p.numel() == 1 else g * state["param_rms"]
            sumsq += weighted.pow(2).sum()  # float32 bookkeeping, as the reference keeps it
        norm = sumsq.sqrt()
        scale, period = group["clipping_scale"], group["clipping_update_period"]
        lead = self.state[params[0]]
        step = lead["step"]
        if scale is None or step == 0:  # nothing to compare with yet; the first norm is not recorded
            return norm, 1.0
        if "norm_history" not in lead:
            lead["norm_history"] = torch.zeros(period, dtype=torch.float32, device=norm.device)
        lead["norm_history"][step % period] = norm
        if step % period == 0:
            ordered = lead["norm_history"].sort().values
            lead["norm_threshold"] = scale * ordered[min(period - 1, (period // 4) * 2)]
        if step < period or "norm_threshold" not in lead:
            return norm, 1.0
        return norm, min(1.0, float(lead["norm_threshold"] / (norm + 1e-20)))

    # --- the update --------------------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.last_stats = []
        for group in self.param_groups:
            params = list(group["params"])
            if not params:
                self.last_stats.append({"grad_norm": torch.zeros(()), "clip_factor": 1.0})
                continue
            grads = []
            for p in params:
                if p.grad is not None and p.grad.is_sparse:
                    raise RuntimeError("ScaledAdam does not support sparse gradients")
                grads.append(torch.zeros_like(p) if p.grad is None else p.grad)
                if not self.state[p]:
                    self.state[p].update(self._fresh_state(group, p))
            norm, factor = self._clip_factor(group, params, grads)
            self.last_stats.append({"grad_norm": norm.detach(), "clip_factor": factor})
            for p, g in zip(params, grads):
                clipped = g if factor == 1.0 else g * factor
                update_grad = clipped if group["clip_update"] else g
                if p.numel() == 1:
                    self._scalar_step(group, p, update_grad, self.state[p])
                else:
                    self._tensor_step(group, p, clipped, update_grad, self.state[p])
                self.state[p]["step"] += 1
        return loss

    @staticmethod
    def _tensor_step(group: dict[str, Any], p: Tensor, clipped: Tensor, grad: Tensor, state: dict[str, Any]) -> None:
        beta1, beta2 = group["betas"]
        period, step = group["size_update_period"], state["step"]
        delta = state["delta"]
        delta.mul_(beta1)
        state["scale_grads"][step % period] = (p * clipped).sum()
        if step % period == period - 1:
            state["param_rms"].copy_(p.pow(2).mean().sqrt())
            if step > 0:
                ScaledAdam._scale_update(group, p, state)
        exp_avg_sq = state["exp_avg_sq"]
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        correction = 1 - beta2 ** (step + 1)
        second = exp_avg_sq / correction if correction < 0.99 else exp_avg_sq
        size = -group["lr"] * (1 - beta1) * state["param_rms"].clamp(min=group["param_min_rms"])
        delta.add_(grad / (second.sqrt() + group["eps"]) * size)
        p.add_(delta)

    @staticmethod
    def _scale_update(group: dict[str, Any], p: Tensor, state: dict[str, Any]) -> None:
        """Adam step on the tensor's log-scale, whose gradient is sum(p * grad), averaged over the period."""
        beta1, beta2 = group["betas"]
        scale_grads = state["scale_grads"]
        period = scale_grads.shape[0]
        size_lr = group["lr"] * group["scalar_lr_scale"]
        decay = beta2**period
        avg_sq = state["scale_exp_avg_sq"]
        avg_sq.mul_(decay).add_(scale_grads.pow(2).mean(), alpha=1 - decay)
        updates_so_far = (state["step"] + 1) // period
        correction = 1 - decay**updates_so_far
        scale_step = -size_lr * correction**0.5 * scale_grads.sum() / (avg_sq.sqrt() + group["eps"])
        rms = state["param_rms"]
        # too small: do not shrink further; too large: shrink at the fastest rate (no host sync either way)
        scale_step = torch.where(rms < group["param_min_rms"], torch.zeros_like(scale_step), scale_step)
        fastest_shrink = torch.full_like(scale_step, -size_lr * period)
        scale_step = torch.where(rms > group["param_max_rms"], fastest_shrink, scale_step)
        state["delta"].add_(p * scale_step, alpha=1 - beta1)

    @staticmethod
    def _scalar_step(group: dict[str, Any], p: Tensor, grad: Tensor, state: dict[str, Any]) -> None:
        beta1, beta2 = group["betas"]
        delta = state["delta"]
        delta.mul_(beta1)
        exp_avg_sq = state["exp_avg_sq"]
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        correction = 1 - beta2 ** (state["step"] + 1)
        denom = (exp_avg_sq / correction).sqrt() + group["eps"]
        delta.add_(grad / denom, alpha=-group["lr"] * group["scalar_lr_scale"] * (1 - beta1))
        p.clamp_(min=-group["scalar_max"], max=group["scalar_max"])
        p.add_(delta)
