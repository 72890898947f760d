"""The coverage-centric coreset report: claims decided seed by seed follow the numbers;
tables, rows and the claims file."""

import json

from configs.papers import coverage_centric_coreset as paper
from experiments import coverage_centric_coreset_report as report
from experiments import paired

SEEDS = (0, 1, 2)


def _summary(accuracy):
  return {"test_accuracy": accuracy, "test_ece": 1.0, "test_nll": 0.1,
          "val_accuracy": accuracy, "train_seconds": 9.0}


def _results(accuracy=None, jitter=None, dataset="mnist1d"):
  """Three seeds of every cell of ``dataset``'s sweep. Default: the paper's CIFAR-10 Table 1
  (importance-only methods fine at low pruning and collapsed at high, CCS best at 90 %).
  ``accuracy`` overrides cells ({arg: value}). Every cell's seeds are value − 0.1, value,
  value + 0.1, so paired differences are exact (a zero-width interval) unless ``jitter``
  ({arg: three offsets}) makes a cell's seeds disagree with the others'."""
  base = {m: dict(zip(paper.PRUNING_PERCENTS, report.PAPER[m])) for m in paper.METHODS}
  results = []
  for arg, seed in paper.sweep(dataset, seeds=SEEDS):
    _, method, percent = arg.split(",")
    value = (accuracy or {}).get(arg, base[method][int(percent)])
    value += 0.1 * (seed - 1) + (jitter or {}).get(arg, (0, 0, 0))[seed]
    results.append({"arg": arg, "seed": seed, "beta": 0.1 if method == "ccs" else None,
                    "command": f"run {arg} {seed}", "wall_seconds": 1.0,
                    "summary": _summary(value)})
  return results


def _claims(results):
  return report.claims(report._cells(results))  # pylint: disable=protected-access


def _finding(claims, start):
  (finding,) = [c for c in claims if c.text.startswith(start)]
  return finding


def test_the_papers_own_numbers_satisfy_its_claims():
  claims = _claims(_results())
  assert len(claims) == 5
  assert {c.verdict for c in claims} == {paired.HOLDS}
  collapse = _finding(claims, "Importance-only (monotonic) selection collapses")
  assert "Entropy 80 % -8.90 [-8.90, -8.90]" in collapse.evidence  # 79.08 − 87.98
  assert "AUM 90 % -50.98 [-50.98, -50.98]" in collapse.evidence  # 28.06 − 79.04
  ccs = _finding(claims, "CCS beats random at 90 %")
  assert ccs.evidence == "test accuracy, CCS − random (points): 90 % +7.04 [+7.04, +7.04]"
  best = _finding(claims, "CCS beats every importance-only method at 90 %")
  assert "Entropy 90 % +19.56 [+19.56, +19.56]" in best.evidence
  # EL2N at 30 % is 0.04 above CCS: inside the 0.5-point tolerance.
  assert "EL2N 30 % -0.04 [-0.04, -0.04]" in _finding(
      claims, "At low pruning rates (30 %, 50 %) CCS is as good").evidence
  assert "Forgetting 30 % +1.03 [+1.03, +1.03]" in _finding(
      claims, "At low pruning rates (30 %, 50 %) some importance score").evidence


def test_verdicts_turn_when_the_numbers_do():
  # CCS at 90 %: 75.0 with seeds disagreeing by ±0.5, so CCS − random per seed is −4.54,
  # −4.04, −3.54: mean −4.04, sd 0.5, half-width 4.303 · 0.5 / √3 = 1.24, [−5.28, −2.80],
  # below 0. Forgetting at 80 % above random; CCS at 30 % 1.44 below EL2N; every
  # importance-only method below random at 50 %.
  low = {f"mnist1d,{m},50": 92.0 for m in report.MONOTONIC}
  claims = _claims(_results({"mnist1d,ccs,90": 75.0, "mnist1d,forgetting,80": 90.0,
                             "mnist1d,ccs,30": 94.0, **low},
                            jitter={"mnist1d,ccs,90": (-0.5, 0.0, 0.5)}))
  ccs = _finding(claims, "CCS beats random at 90 %")
  assert ccs.verdict == paired.DOES_NOT_HOLD
  assert "90 % -4.04 [-5.28, -2.80]" in ccs.evidence
  collapse = _finding(claims, "Importance-only (monotonic) selection collapses")
  assert collapse.verdict == paired.DOES_NOT_HOLD
  assert "Forgetting 80 % +2.02 [+2.02, +2.02]" in collapse.evidence
  as_good = _finding(claims, "At low pruning rates (30 %, 50 %) CCS is as good")
  assert as_good.verdict == paired.DOES_NOT_HOLD and "EL2N 30 % -1.44" in as_good.evidence
  some = _finding(claims, "At low pruning rates (30 %, 50 %) some importance score")
  assert some.verdict == paired.DOES_NOT_HOLD and "AUM 50 % -1.40" in some.evidence
  # CCS at 75.0 still beats every importance-only method at 90 % (entropy: +8.48).
  assert _finding(claims, "CCS beats every importance-only").verdict == paired.HOLDS


def test_seeds_that_disagree_leave_claims_inconclusive():
  # Random at 90 % with seeds off by +6, 0, −6: CCS − random per seed 1.04, 7.04, 13.04
  # (mean +7.04, sd 6, half-width 4.303 · 6 / √3 = 14.91): [−7.87, +21.95] spans 0 though
  # the mean is the paper's gap. Entropy − random at 90 %: −18.52, −12.52, −6.52, so
  # [−27.43, +2.39]; the other methods' gaps are large enough to hold, which leaves the
  # collapse claim open (no part fails, one is undecided).
  claims = _claims(_results(jitter={"mnist1d,random,90": (6.0, 0.0, -6.0)}))
  ccs = _finding(claims, "CCS beats random at 90 %")
  assert ccs.verdict == paired.UNDECIDED and "90 % +7.04 [-7.87, +21.95]" in ccs.evidence
  collapse = _finding(claims, "Importance-only (monotonic) selection collapses")
  assert collapse.verdict == paired.UNDECIDED
  assert "Entropy 90 % -12.52 [-27.43, +2.39]" in collapse.evidence
  assert "EL2N 90 % -56.71 [-71.62, -41.80]" in collapse.evidence


def test_a_partial_grid_leaves_out_the_claims_it_cannot_check():
  claims = _claims([r for r in _results() if r["arg"] != "mnist1d,ccs,90"])
  assert [c.text for c in claims if "90 %" in c.text and "CCS" in c.text] == []
  assert _finding(claims, "Importance-only (monotonic) selection collapses")


def _score_runs(dataset="mnist1d"):
  sizes = {"mnist1d": (45000, 5000, 5000), "fashion_mnist": (12000, 6000, 10000)}[dataset]
  return [{"arg": f"{dataset},scores", "seed": s, "command": "run scores",
           "wall_seconds": 5.0, "summary": {**_summary(98.0), **dict(zip(
               ("num_train", "num_validation", "num_test"), sizes))}} for s in SEEDS]


def test_table_and_rows_cover_every_cell():
  results = _results()
  cells = report._cells(results)  # pylint: disable=protected-access
  table = report._table(cells, paper.PRUNING_PERCENTS)  # pylint: disable=protected-access
  assert len(table) == 2 + len(paper.METHODS)
  # The population std of −0.1, 0, +0.1 is 0.0816.
  assert "| CCS (AUM) | 95.40 ± 0.08 |" in table[-1]
  rows = report.rows(results, _score_runs(), results[:1])
  assert len(rows) == 30 + 1 + 1
  assert rows[0]["test_accuracy_mean"] == round(report.PAPER["random"][0], 4)
  assert rows[0]["seeds"] == "0 1 2"
  assert {r["kind"] for r in rows} == {"coreset", "full data (scores)", "beta search"}


def test_write_gives_the_claims_file_beside_the_tables(tmp_path):
  prefix = str(tmp_path / "coverage_centric_coreset_mnist1d")
  results = _results()
  search = [r for r in results if r["arg"].startswith("mnist1d,ccs,") and r["seed"] == 0]
  report.write(results, _score_runs(), search, chosen_beta={p: 0.1 for p in
                                                            paper.PRUNING_PERCENTS},
               prefix=prefix, seeds=SEEDS, strata_dir=None)
  with open(prefix + "_claims.json") as f:
    claims = json.load(f)
  assert len(claims) == 5 and {c["verdict"] for c in claims} == {paired.HOLDS}
  assert claims[0]["paper"] == report.PAPER_NAME
  assert claims[0]["table"] == "coverage_centric_coreset_mnist1d.md"
  assert claims[0]["command"] == "python -m experiments.coverage_centric_coreset"
  assert claims[0]["regime"].endswith("3 seeds")
  with open(prefix + ".md") as f:
    text = f.read()
  assert "- CCS beats random at 90 % pruning (the paper: +7.04 points): **holds**" in text
  assert "seed by seed (3 seeds, 0, 1, 2)" in text


FASHION_LOW = "At a low pruning rate (50 %) "


def test_fashion_mnist_claims_are_decided_on_its_rates():
  # Fashion-MNIST's sweep prunes 50, 80 and 90 % only: the low-rate claims are decided at
  # 50 % alone (and say so), nothing mentions 30 %, and the paper's numbers satisfy all five.
  results = _results(dataset="fashion_mnist")
  assert {r["arg"].split(",")[2] for r in results} == {"50", "80", "90"}
  claims = _claims(results)
  assert len(claims) == 5 and {c.verdict for c in claims} == {paired.HOLDS}
  assert not [c for c in claims if "30 %" in c.text + c.evidence]
  as_good = _finding(claims, FASHION_LOW + "CCS is as good as the best method")
  assert "Forgetting 50 % -0.25 [-0.25, -0.25]" in as_good.evidence  # 95.04 − 95.29
  some = _finding(claims, FASHION_LOW + "some importance score beats random")
  assert some.text == (FASHION_LOW + "some importance score beats random (as forgetting "
                       "and EL2N do in the paper)")
  assert "Forgetting 50 % +1.89 [+1.89, +1.89]" in some.evidence  # 95.29 − 93.40
  collapse = _finding(claims, "Importance-only (monotonic) selection collapses")
  assert collapse.text.endswith("below random at 80 % and 90 %")
  assert report.percents_of("fashion_mnist") == (50, 80, 90)
  assert report.percents_of("mnist1d") == paper.PRUNING_PERCENTS


def test_fashion_mnist_verdict_with_its_interval():
  # CCS at 50 % with seeds off by −0.6, 0, +0.6: CCS − forgetting per seed −0.85, −0.25,
  # +0.35: mean −0.25, sd 0.6, half-width 4.303 · 0.6 / √3 = 1.49, [−1.74, +1.24], which
  # reaches below the −0.5 tolerance and above it: inconclusive (no part fails).
  claims = _claims(_results(dataset="fashion_mnist",
                            jitter={"fashion_mnist,ccs,50": (-0.6, 0.0, 0.6)}))
  as_good = _finding(claims, FASHION_LOW + "CCS is as good")
  assert as_good.verdict == paired.UNDECIDED
  assert "Forgetting 50 % -0.25 [-1.74, +1.24]" in as_good.evidence
  # CCS − random at 50 %: +1.64 ± 1.49, [+0.15, +3.13], above −0.5: that part holds.
  assert "Random 50 % +1.64 [+0.15, +3.13]" in as_good.evidence


def test_fashion_mnist_missing_cells_leave_their_claims_out():
  results = _results(dataset="fashion_mnist")
  claims = _claims([r for r in results if r["arg"] != "fashion_mnist,ccs,50"])
  assert [c.text for c in claims if "CCS is as good" in c.text] == []
  assert _finding(claims, FASHION_LOW + "some importance score beats random")
  # Without any 50 % cell neither low-rate claim is made; the high-rate ones stay.
  claims = _claims([r for r in results if not r["arg"].endswith(",50")])
  assert len(claims) == 3 and not [c for c in claims if "low pruning" in c.text]


def test_fashion_mnist_write_names_its_dataset(tmp_path):
  prefix = str(tmp_path / "coverage_centric_coreset_fashion_mnist")
  results = _results(dataset="fashion_mnist")
  search = [r for r in results if ",ccs," in r["arg"] and r["seed"] == 0]
  report.write(results, _score_runs("fashion_mnist"), search,
               chosen_beta={50: 0.0, 80: 0.1, 90: 0.3}, prefix=prefix, seeds=SEEDS,
               strata_dir=None)
  with open(prefix + "_claims.json") as f:
    claims = json.load(f)
  assert len(claims) == 5 and {c["verdict"] for c in claims} == {paired.HOLDS}
  assert claims[0]["table"] == "coverage_centric_coreset_fashion_mnist.md"
  assert claims[0]["command"] == ("python -m experiments.coverage_centric_coreset "
                                  "--dataset=fashion_mnist")
  assert claims[0]["regime"] == (
      "Fashion-MNIST, a fixed random 12,000-image training subset (12,000 train), MNIST "
      "CNN, pruning 50 %, 80 %, 90 %, 20-epoch scores, coresets trained 470 steps, lr "
      "0.05; CCS β by validation accuracy; 3 seeds")
  with open(prefix + ".md") as f:
    text = f.read()
  assert text.startswith("# Coverage-centric coreset selection on Fashion-MNIST: Table 1")
  assert "| method | 50 % | 80 % | 90 % |" in text  # this grid's table
  assert "| method | 30 % | 50 % | 70 % | 80 % | 90 % |" in text  # the paper's
  assert "`fashion_mnist_local`, shortened to fit the CPU" in text
  assert "mnist1d" not in text.lower().replace("mnist-1d", "")
  rows = report.rows(results, _score_runs("fashion_mnist"), search)
  assert [r["config_arg"] for r in rows if r["kind"] == "full data (scores)"] == [
      "fashion_mnist,scores"]
