"""The coverage-centric coreset report: verdicts follow the numbers; tables and rows."""

from configs.papers import coverage_centric_coreset as paper
from experiments import coverage_centric_coreset_report as report


def _results(accuracy=None):
  """Two seeds (±0.1) of every cell. Default: the paper's CIFAR-10 shape: importance-only
  methods fine at low pruning and collapsed at high, CCS best at 90 %."""
  base = {m: dict(zip(paper.PRUNING_PERCENTS, report.PAPER[m])) for m in paper.METHODS}
  results = []
  for arg, seed in paper.sweep("mnist1d", seeds=(0, 1)):
    _, method, percent = arg.split(",")
    value = (accuracy or {}).get(arg, base[method][int(percent)])
    results.append({"arg": arg, "seed": seed, "beta": 0.1 if method == "ccs" else None,
                    "command": f"run {arg} {seed}", "wall_seconds": 1.0,
                    "summary": {"test_accuracy": value + (0.1 if seed else -0.1),
                                "test_ece": 1.0, "test_nll": 0.1, "val_accuracy": value,
                                "train_seconds": 9.0}})
  return results


def _line(claims, start):
  (line,) = [c for c in claims if c.startswith(start)]
  return line


def _claims(results):
  return report.claims(report._cells(results))  # pylint: disable=protected-access


def test_the_papers_own_numbers_satisfy_its_claims():
  claims = _claims(_results())
  assert len(claims) == 5
  collapse = _line(claims, "Importance-only (monotonic) selection collapses")
  assert "**holds**" in collapse and "8 of 8" in collapse
  ccs = _line(claims, "CCS beats random at 90 %")
  assert "**holds**" in ccs and "+7.04 points." in ccs
  best = _line(claims, "CCS beats the best importance-only method at 90 %")
  assert "**holds**" in best and "+19.56 points against Entropy" in best
  assert "**holds**" in _line(claims, "At low pruning rates CCS is as good")
  assert "**holds**" in _line(claims, "At low pruning rates some importance score")


def test_verdicts_turn_when_the_numbers_do():
  claims = _claims(_results({"mnist1d,ccs,90": 79.0, "mnist1d,forgetting,80": 90.0,
                             "mnist1d,ccs,30": 94.0}))
  collapse = _line(claims, "Importance-only (monotonic) selection collapses")
  assert "**does not hold**" in collapse and "7 of 8" in collapse
  ccs = _line(claims, "CCS beats random at 90 %")
  # −0.04 points against seed stds of 0.1: marked as no measurable effect.
  assert "**does not hold**" in ccs and "-0.04 points (smaller than the seed std" in ccs
  assert "**does not hold**" in _line(claims, "At low pruning rates CCS is as good")


def test_table_and_rows_cover_every_cell():
  results = _results()
  cells = report._cells(results)  # pylint: disable=protected-access
  table = report._table(cells, paper.PRUNING_PERCENTS)  # pylint: disable=protected-access
  assert len(table) == 2 + len(paper.METHODS)
  assert "| CCS (AUM) | 95.40 ± 0.10 |" in table[-1]
  score_runs = [{"arg": "mnist1d,scores", "seed": s, "command": "run scores",
                 "summary": {"test_accuracy": 98.0, "test_ece": 1.0, "test_nll": 0.1,
                             "val_accuracy": 98.0, "train_seconds": 10.0}}
                for s in (0, 1)]
  rows = report.rows(results, score_runs, results[:1])
  assert len(rows) == 30 + 1 + 1
  assert rows[0]["test_accuracy_mean"] == round(report.PAPER["random"][0], 4)
  assert {r["kind"] for r in rows} == {"coreset", "full data (scores)", "beta search"}
