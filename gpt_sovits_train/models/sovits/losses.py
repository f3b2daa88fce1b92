"""VITS training losses (LSGAN adversarial, feature matching, KL), written to match GPT-SoVITS v2's maths.

Kept as plain functions so the LightningModule, tests and benchmarks share one definition and the
reference fixture (`output.lossmath.*`) can pin them down numerically.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from gpt_sovits_train.models.sovits.discriminator import MultiPeriodDiscriminator


def feature_matching_loss(fmaps_real: list[list[Tensor]], fmaps_fake: list[list[Tensor]]) -> Tensor:
    """L1 between discriminator feature maps of real and generated audio, summed over layers, times 2.

    Real features are detached: the generator should move towards them, never the other way.
    """
    total = torch.zeros((), device=fmaps_fake[0][0].device)
    for disc_real, disc_fake in zip(fmaps_real, fmaps_fake, strict=True):
        for real, fake in zip(disc_real, disc_fake, strict=True):
            total = total + torch.mean(torch.abs(real.float().detach() - fake.float()))
    return total * 2


def discriminator_loss(scores_real: list[Tensor], scores_fake: list[Tensor]) -> tuple[Tensor, list[float], list[float]]:
    """LSGAN discriminator loss: real pushed to 1, fake to 0; per-discriminator parts returned for logging."""
    total = torch.zeros((), device=scores_real[0].device)
    real_parts: list[float] = []
    fake_parts: list[float] = []
    for real, fake in zip(scores_real, scores_fake, strict=True):
        loss_real = torch.mean((1 - real.float()) ** 2)
        loss_fake = torch.mean(fake.float() ** 2)
        total = total + loss_real + loss_fake
        real_parts.append(loss_real.item())
        fake_parts.append(loss_fake.item())
    return total, real_parts, fake_parts


def generator_adversarial_loss(scores_fake: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
    """LSGAN generator loss: generated audio's discriminator scores pushed to 1."""
    parts = [torch.mean((1 - fake.float()) ** 2) for fake in scores_fake]
    return torch.stack(parts).sum(), parts


def kl_loss(z_p: Tensor, logs_q: Tensor, m_p: Tensor, logs_p: Tensor, mask: Tensor) -> Tensor:
    """KL(q || p) of the flow-mapped posterior sample against the text prior, averaged over valid frames.

    Args:
        z_p, logs_q: flow output of the posterior sample and the posterior log-std, [B, C, T].
        m_p, logs_p: prior mean and log-std, [B, C, T].
        mask: valid-frame mask, [B, 1, T].
    """
    z_p, logs_q, m_p, logs_p, mask = (t.float() for t in (z_p, logs_q, m_p, logs_p, mask))
    kl = logs_p - logs_q - 0.5 + 0.5 * (z_p - m_p) ** 2 * torch.exp(-2.0 * logs_p)
    return torch.sum(kl * mask) / torch.sum(mask)


def mel_reconstruction_loss(y_mel: Tensor, y_hat_mel: Tensor) -> Tensor:
    """Plain L1 between log-mels of the real and generated segment (v2 weights it by c_mel=45 outside)."""
    return torch.nn.functional.l1_loss(y_hat_mel.float(), y_mel.float())


@contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Parameters of ``module`` stop requiring grad inside the block (restored after, even on error).

    Used around the generator's discriminator pass: gradients must flow *through* the discriminator's
    activations to the generator, but its own weight gradients would be thrown away, so not building them
    saves the weight-gradient convolutions (about a third of the discriminator's backward).
    """
    trainable = [p for p in module.parameters() if p.requires_grad]
    for param in trainable:
        param.requires_grad_(False)
    try:
        yield
    finally:
        for param in trainable:
            param.requires_grad_(True)


def generator_gan_losses(
    discriminator: MultiPeriodDiscriminator, real: Tensor, generated: Tensor
) -> tuple[Tensor, Tensor]:
    """(LSGAN generator loss, feature-matching loss) of the generator step, as v2 computes them.

    v2 runs the discriminator on real and generated audio with a full graph and discards the discriminator
    gradients. The values here are the same; the real branch only gives detached feature-matching targets,
    so it runs without a graph, and the generated branch builds none for the discriminator's weights.
    """
    with torch.no_grad():
        _, fmaps_real = discriminator.score(real)
    with frozen(discriminator):
        scores_fake, fmaps_fake = discriminator.score(generated)
    loss_gen, _ = generator_adversarial_loss(scores_fake)
    return loss_gen, feature_matching_loss(fmaps_real, fmaps_fake)
