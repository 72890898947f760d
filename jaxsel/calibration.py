"""Calibration during training: which per-example loss and whether to mix up.

The four settings of the calibrated-prioritization paper (Tata et al., 2022):
``none`` (cross-entropy), ``label_smoothing`` (ε), ``mixup`` (α; cross-entropy on mixed
inputs) and ``focal`` (γ). Each reads only its own hyper-parameter from
``config.calibration``.
"""

import ml_collections

from jaxsel import losses

METHODS = ("none", "label_smoothing", "mixup", "focal")


def loss_and_mixup(calibration: ml_collections.ConfigDict) -> tuple[losses.LossFn, float]:
  """``config.calibration`` -> (per-example loss, mixup α; 0 means no mixup)."""
  method = calibration.method
  if method not in METHODS:
    raise ValueError(
        f"unknown calibration.method {method!r}; valid: {', '.join(sorted(METHODS))}")
  if method == "label_smoothing":
    return losses.get_loss("label_smoothing", smoothing=calibration.label_smoothing), 0.0
  if method == "focal":
    return losses.get_loss("focal", gamma=calibration.focal_gamma), 0.0
  if method == "mixup":
    if calibration.mixup_alpha <= 0:
      raise ValueError(
          f"calibration.mixup_alpha must be > 0 for calibration.method='mixup', got "
          f"{calibration.mixup_alpha!r}")
    return losses.get_loss("cross_entropy"), float(calibration.mixup_alpha)
  return losses.get_loss("cross_entropy"), 0.0

