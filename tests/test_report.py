"""The calibrated-prioritization report: its holds / does-not-hold verdicts follow the numbers."""

import pytest

from configs.papers import calib_prioritization as paper
from experiments import calib_prioritization_report as report
from experiments import paired

CALIBRATED = ("label_smoothing", "mixup", "focal")


def _summary(accuracy, ece, oe=0.5):
  return {"test_accuracy": accuracy, "test_ece": ece, "test_oe": oe}


def _results(accuracy=None, ece=None, jitter=None):
  """Three seeds of every cell of the grid. By default: cross-entropy 98 % / ECE 2 % at
  every size, calibrated runs 97.5 % / ECE 1 % (mixup 0.5 %, label smoothing 1.5 %), 100 %
  at 98.5 %, target-guided runs +0.2 points (label smoothing +0.4), random subsets 97.9 % /
  ECE 2.5 %. ``accuracy`` / ``ece`` override cells: {(arg): value}. Every cell's seeds are
  value − 0.1, value, value + 0.1, so paired differences are exact unless ``jitter``
  ({arg: (three accuracy offsets)}) adds seed-to-seed disagreement to a cell."""
  results = []
  for arg, seed in paper.sweep("mnist1d", seeds=(0, 1, 2)):
    _, calibration, percent, *variant = arg.split(",")
    variant = variant[0] if variant else ""
    acc = 98.5 if int(percent) == 100 else (98.0 if calibration == "none" else 97.5)
    cell_ece = {"none": 2.0, "mixup": 0.5, "label_smoothing": 1.5, "focal": 1.0}[calibration]
    if variant == "target":
      acc += 0.4 if calibration == "label_smoothing" else 0.2
    if variant == "random":
      acc, cell_ece = 97.9, 2.5
    acc = (accuracy or {}).get(arg, acc) + (jitter or {}).get(arg, (0, 0, 0))[seed]
    cell_ece = (ece or {}).get(arg, cell_ece)
    results.append({"arg": arg, "seed": seed, "command": f"run {arg} {seed}",
                    "summary": _summary(acc + 0.1 * (seed - 1), cell_ece)})
  return results


def _claims(results):
  return report.claims(report.cells(results))


def _finding(claims, start):
  (finding,) = [c for c in claims if c.text.startswith(start)]
  return finding


def test_verdicts_hold_on_a_grid_made_to_agree_with_the_paper():
  claims = _claims(_results())
  assert len(claims) == 9
  assert {c.verdict for c in claims} == {paired.HOLDS}
  ece = _finding(claims, "Calibration during training lowers test ECE")
  assert "LS 30 % -0.50 [-0.50, -0.50]" in ece.evidence
  assert "mixup 10 % -1.50 [-1.50, -1.50]" in ece.evidence
  guidance = _finding(claims, "Target guidance improves accuracy")
  assert "LS +0.40 [+0.40, +0.40]" in guidance.evidence
  assert "LS − CE +0.20" in _finding(claims, "...most for label smoothing").evidence
  assert "10 % − 100 % -0.50" in _finding(claims, "10 % subsets after warm-up").evidence


def test_verdicts_turn_when_the_numbers_do():
  # Focal at 20 % worse calibrated than cross-entropy; mixup at 10 % loses 2 points;
  # target guidance hurts cross-entropy at 30 % (its average gain is −0.2); random subsets
  # win at 10 %.
  claims = _claims(_results(
      ece={"mnist1d,focal,20": 2.5},
      accuracy={"mnist1d,mixup,10": 96.0, "mnist1d,none,30,target": 97.0,
                "mnist1d,none,10,random": 98.3}))
  ece = _finding(claims, "Calibration during training lowers test ECE")
  assert ece.verdict == paired.DOES_NOT_HOLD and "focal 20 % +0.50" in ece.evidence
  cost = _finding(claims, "...at no large accuracy cost")
  assert cost.verdict == paired.DOES_NOT_HOLD and "mixup 10 % -2.00" in cost.evidence
  guidance = _finding(claims, "Target guidance improves accuracy")
  assert guidance.verdict == paired.DOES_NOT_HOLD and "CE -0.20" in guidance.evidence
  random = _finding(claims, "Max-entropy subsets beat fresh random subsets")
  assert random.verdict == paired.DOES_NOT_HOLD and "10 % -0.30" in random.evidence
  # A tie is not a loss: focal at 20 % as calibrated as cross-entropy leaves it open.
  tie = _claims(_results(ece={"mnist1d,focal,20": 2.0}))
  assert _finding(tie, "Calibration during training").verdict == paired.UNDECIDED


def test_seeds_that_disagree_leave_a_claim_inconclusive():
  # Max entropy − random at 30 %: per seed −0.4, +0.1, +0.6 (mean +0.1, sd 0.5, half-width
  # 4.303 · 0.5 / √3 = 1.24), so its interval spans 0 though the mean is positive.
  claims = _claims(_results(jitter={"mnist1d,none,30,random": (0.5, 0.0, -0.5)}))
  random = _finding(claims, "Max-entropy subsets beat fresh random subsets")
  assert random.verdict == paired.UNDECIDED
  assert "30 % +0.10 [-1.14, +1.34]" in random.evidence


def test_label_smoothing_not_weakest_and_mixup_not_most_consistent():
  ece = {f"mnist1d,mixup,{p}": 1.8 for p in (30, 20, 10)}
  ece.update({f"mnist1d,label_smoothing,{p}": 0.2 for p in (30, 20, 10)})
  claims = _claims(_results(ece=ece))
  assert _finding(claims, "Mixup is the most consistent").verdict == paired.DOES_NOT_HOLD
  assert _finding(claims, "Label smoothing is the weakest").verdict == paired.DOES_NOT_HOLD


def test_a_partial_grid_leaves_out_the_claims_it_cannot_check():
  results = [r for r in _results() if not r["arg"].endswith(("target", "random"))]
  claims = _claims(results)
  assert not [c for c in claims
              if c.text.startswith(("Target guidance", "Max-entropy subsets"))]
  assert _finding(claims, "Calibration during training lowers test ECE")


@pytest.mark.parametrize("arg,expected", [
    ("mnist1d,mixup,10", "α=0.15"), ("mnist1d,focal,30,target", "γ=2"),
    ("mnist1d,label_smoothing,20", "ε=0.05"), ("mnist1d,none,10", "")])
def test_hyper_parameter_labels_come_from_the_config(arg, expected):
  cell = report.cells([{"arg": arg, "seed": 0, "command": "", "summary": {}}])[arg]
  assert cell["hparam"] == expected


def test_a_tuned_grid_labels_its_cells_with_the_chosen_values():
  result = {"arg": "mnist1d_small,mixup,10", "seed": 0, "command": "", "summary": {},
            "hparam": "α=0.05"}
  assert report.cells([result])["mnist1d_small,mixup,10"]["hparam"] == "α=0.05"
  other = {"arg": "mnist1d,none,10", "seed": 0, "command": "", "summary": {}}
  with pytest.raises(ValueError, match="one dataset"):
    report.cells([result, other])
