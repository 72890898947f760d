"""The budgeted importance sampling grid's claims, each decided seed by seed
(``experiments.paired``) on the cells of ``budgeted_importance_sampling_report``."""

from experiments import budgeted_importance_sampling_report as report
from experiments import claims as claims_lib
from experiments import paired

ACCURACY = "accuracy difference (points)"


def _differences(cells, compare, metric="test_accuracy", *, complete=False) -> dict | None:
  """{label: paired difference a − b, seed by seed} of each (label, a, b) of ``compare``
  whose two cells are both in ``cells`` (None if none is, or, if ``complete``, if one is
  missing)."""
  return paired.differences(lambda key: report._seeds(cells, key, metric), compare,
                            partial=not complete)


def _per_cell(cells, compare, direction, *, metric="test_accuracy", complete=False,
              **finding):
  """A claim decided by one paired test a − b per (label, a, b) of ``compare``, combined
  over the cells present (all of them if ``complete``); None if there are none.
  ``finding``: ``claims.per_cell``'s text, unit, combine and decimals."""
  return claims_lib.per_cell(_differences(cells, compare, metric, complete=complete),
                             direction, **finding)


def _no_better(finding):
  """A "does not beat" claim is tested in the direction of "worse": say what an
  inconclusive verdict means for it."""
  if finding is None or finding.verdict != paired.UNDECIDED:
    return finding
  return finding._replace(evidence=finding.evidence + " (inconclusive: consistent with the "
                          "claim, but not evidence for it)")


def _spread(values) -> dict:
  """{seed: max − min over the cells} of [{seed: value}] on the seeds every cell has."""
  seeds = set.intersection(*(set(v) for v in values))
  return {s: max(v[s] for v in values) - min(v[s] for v in values) for s in seeds}


def _augmentation_vs_sampler(cells, dataset, augmentations):
  """Claim 3: the per-seed accuracy spread over augmentations (unif-SGD, 30 %) minus the
  spread over the samplers (standard, 30 %), paired by seed."""
  key = lambda m, a: (dataset, m, a, report.MAIN_BUDGET, "")  # noqa: E731
  samplers = [report._seeds(cells, key(m, "standard")) for m in ("unif", "p", "c")]
  augmented = [report._seeds(cells, key("unif", a)) for a in augmentations]
  if len(augmentations) < 2 or None in samplers + augmented:
    return None
  diff = paired.paired_difference(_spread(augmented), _spread(samplers))
  versus = _differences(cells, [(report.AUGMENTATION_NAMES[a], key("unif", a),
                                 key("unif", "standard"))
                                for a in augmentations if a != "standard"])
  lowered = paired.all_hold(paired.claim_verdict(d, -1) for d in versus.values())
  evidence = (f"accuracy spread (max − min, points) over augmentations − over samplers "
              f"{paired.format_difference(diff)}; each augmentation − standard (unif-SGD): "
              + paired.format_differences(versus)
              + ("; every added augmentation lowers accuracy here, so the larger spread is a "
                 "loss, not a gain" if lowered == paired.HOLDS else ""))
  return claims_lib.Finding(
      "Data augmentation matters more than the sampler at a 30 % budget: the accuracy "
      "spread over augmentations (unif-SGD) exceeds the spread over unif/p/c-SGD (standard "
      "augmentation)", paired.claim_verdict(diff, 1), evidence)


def claims(cells, dataset) -> list:
  """The paper's claims on ``dataset``, each decided seed by seed (``experiments.paired``):
  a list of ``claims.Finding``. A claim over several cells is decided on the cells the
  grid holds (its evidence lists them); one with none of its cells is left out."""
  augmentations = report._augmentations(cells, dataset)
  key = lambda m, a="standard", b=report.MAIN_BUDGET, ablation="": (  # noqa: E731
      dataset, m, a, b, ablation)
  settings = [(a, report.MAIN_BUDGET) for a in augmentations]
  settings += [("standard", b) for b in report.BUDGETS if b != report.MAIN_BUDGET]
  found = []

  def add(finding):
    if finding is not None:
      found.append(finding)

  for method in ("p", "c", "sb"):  # selective backprop also samples by difficulty
    name = report.SHORT_NAMES[method]
    add(_no_better(_per_cell(
        cells, [(f"{report.AUGMENTATION_NAMES[a]} {100 * b:.0f} %", key(method, a, b),
                 key("unif", a, b)) for a, b in settings], -1,
        text=f"Importance sampling does not beat uniform sampling: {name} is no better "
             "than unif-SGD at the same budget and augmentation, in any cell (tested as "
             f"{name} − unif-SGD < 0 in every cell)",
        unit=f"{ACCURACY}, {name} − unif-SGD")))
  add(_per_cell(
      cells, [(report.AUGMENTATION_NAMES[a], key("unif", a), key("sgd", b=1.0))
              for a in augmentations if a != "standard"], 1, combine=paired.some_hold,
      text="With a 30 % budget, uniform sampling with a suitable augmentation surpasses "
           "100 %-budget standard training (some augmentation's unif-SGD − SGD 100 % "
           "standard > 0)",
      unit=f"{ACCURACY}, unif-SGD 30 % − SGD 100 % standard"))
  add(_augmentation_vs_sampler(cells, dataset, augmentations))
  for baseline, figure in (("random", "a fixed random subset"),
                           ("coreset", "a fixed core-set (CCS on the accumulated margin)")):
    add(_per_cell(
        cells, [(f"{100 * b:.0f} %", key("unif", b=b), key(baseline, b=b))
                for b in report.BUDGETS],
        1, text=f"unif-SGD beats {figure} of the same size, at every budget (Figure 1)",
        unit=f"{ACCURACY}, unif-SGD − {report.SHORT_NAMES[baseline]}"))
  steps = [(label, key("p", ablation=a), key("p", ablation=b))
           for label, b, a in zip(report.ABLATION_STEPS, report.ABLATION_ORDER,
                                  report.ABLATION_ORDER[1:])]
  add(_per_cell(
      cells, steps, 1, metric="coverage_entropy", complete=True, decimals=3,
      text="Each ingredient that brings p-SGD closer to uniform raises H(c) (step LR → "
           "linear, last value → average, no ε → ε; Figure 1, right)",
      unit="H(c) difference (nats)"))
  add(_per_cell(
      cells, steps, 1, complete=True,
      text="...and each one raises accuracy (the same steps)", unit=ACCURACY))
  return found


def step_lr_note(cells, dataset) -> list[str]:
  """How much of the step-LR ablation is the schedule alone (not a claim of the paper)."""
  key = lambda ablation: (dataset, "unif", "standard", report.MAIN_BUDGET, ablation)  # noqa: E731
  diffs = _differences(cells, [("step − linear LR", key("step_lr"), key(""))])
  return [f"The step schedule alone, with unif-SGD: {paired.format_differences(diffs)} "
          "accuracy points "
          "(paired by seed); the step-LR ablation changes the schedule as well as the "
          "sampling.", ""] if diffs else []
