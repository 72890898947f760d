"""The forgetting / MLI report: claims decided seed by seed follow the numbers; tables cover
every cell."""

import numpy as np
import pytest

from experiments import forgetting_mli_fashion_report as fashion_report
from experiments import forgetting_mli_report as report
from experiments import paired

NUM_TRAIN = 1000
SIZES = (100, 300, 500)
WINDOW = 100
SEEDS = (0, 1, 2)


def _runs(accuracy, jitter=None, prefix=""):
  """Three seeds of each (ordering, removed, k) in ``accuracy``: value − 0.1, value,
  value + 0.1, so paired differences are exact unless ``jitter`` ({key: three offsets})
  makes one cell's seeds disagree with the others'."""
  runs = []
  for (name, removed, k), value in accuracy.items():
    label = f"{prefix}{name}_r{removed}_k{k}"
    for seed in SEEDS:
      offset = 0.1 * (seed - 1) + (jitter or {}).get((name, removed, k), (0, 0, 0))[seed]
      runs.append({"arg": label, "seed": seed, "ordering": name, "removed": removed, "k": k,
                   "command": f"run {label} {seed}", "wall_seconds": 1.0,
                   "summary": {"test_accuracy": value + offset}})
  return runs


def _accuracy(forgetting=(96.2, 96.1, 94.0), random=(95.9, 95.0, 93.0), windows=None):
  accuracy = {("none", 0, 0): 96.2}
  for name, values in (("forgetting", forgetting), ("random", random),
                       ("max_loss_increase", (96.0, 95.5, 93.5))):
    accuracy.update({(name, r, 0): v for r, v in zip(SIZES, values)})
  windows = windows or {0: 96.2, 400: 95.8, 900: 95.2}
  accuracy.update({("forgetting", WINDOW, k): v for k, v in windows.items()})
  return accuracy


def _analysis(noisy_shares=(68.0, 70.0, 72.0)):
  return {"unforgettable_all_seeds": 40.0,
          "noise": [{"seed": seed, "shares": {"forgetting": {"k": share}}, "noise_rate": 20.0}
                    for seed, share in enumerate(noisy_shares)],
          # Window means rise with k: the first window holds the least-forgotten.
          "window_scores": {"forgetting": np.linspace(0, 10, NUM_TRAIN),
                            "max_loss_increase": np.linspace(-1, 1, NUM_TRAIN)},
          "spearman": {"max_loss_increase": 0.6}, "overlap_lowest_30": {"max_loss_increase": 55}}


def _claims(accuracy, analysis=None, jitter=None):
  runs = _runs(accuracy, jitter)
  return report.claims([r for r in runs if not r["k"]], [r for r in runs if r["k"]],
                       analysis or _analysis(), num_train=NUM_TRAIN)


def _finding(claims, start):
  (finding,) = [c for c in claims if c.text.startswith(start)]
  return finding


def test_the_papers_shape_satisfies_its_claims():
  claims = _claims(_accuracy())
  assert len(claims) == 5
  removal = _finding(claims, "A large fraction can be removed")
  # 10 % and 30 % removed lose 0 and 0.1 points, inside the 0.2 tolerance; 50 % is not part
  # of the claim.
  assert removal.verdict == paired.HOLDS
  assert ("Forgetting − no removal (points): 10 % +0.00 [+0.00, +0.00]; 30 % -0.10 "
          "[-0.10, -0.10]; beyond 30 % (not part of the claim): 50 % -2.20" in removal.evidence)
  assert "40.0 % of the examples are unforgettable in every seed" in removal.evidence
  random = _finding(claims, "Random removal costs more")
  assert random.verdict == paired.HOLDS
  assert random.evidence.endswith("10 % +0.30 [+0.30, +0.30]; 30 % +1.10 [+1.10, +1.10]; "
                                  "50 % +1.00 [+1.00, +1.00]")
  # Shares 68, 70, 72 % against twice the 20 % base rate: +28, +30, +32 (sd 2), half-width
  # 4.303 · 2 / √3 = 4.97.
  noise = _finding(claims, "Noisy labels are forgotten most")
  assert noise.verdict == paired.HOLDS and "+30.00 [+25.03, +34.97]" in noise.evidence
  window = _finding(claims, "Removing more-forgotten examples costs more")
  assert window.verdict == paired.HOLDS
  assert "+1.00 [+1.00, +1.00] (96.20 % against 95.20 %)" in window.evidence
  assert "count -1.00 (computed, not tested)" in window.evidence
  # Max loss increase − forgetting per size −0.2, −0.6, −0.5: 0.43 points worse on
  # average, more than the 0.2 allowed.
  mli = _finding(claims, "(Not a claim of the paper.) Removing the lowest-scored by Max loss")
  assert mli.verdict == paired.DOES_NOT_HOLD
  assert "mean over the sizes -0.43 [-0.43, -0.43]; per size: 10 % -0.20" in mli.evidence


def test_verdicts_turn_when_the_numbers_do():
  # Random at 30 % with seeds off by +0.5, 0, −0.5: forgetting − random per seed −1.5,
  # −1.0, −0.5, so [−2.24, +0.24] (half-width 4.303 · 0.5 / √3 = 1.24) is open, but 10 % and
  # 50 % lie below 0 and decide the claim. (The first window is the 10 % cell: 95.0.)
  claims = _claims(_accuracy(forgetting=(95.9, 94.0, 93.0), random=(96.0, 95.0, 93.5),
                             windows={0: 95.0, 400: 95.8, 900: 96.0}),
                   _analysis(noisy_shares=(24.0, 25.0, 26.0)),
                   jitter={("random", 300, 0): (0.5, 0.0, -0.5)})
  removal = _finding(claims, "A large fraction can be removed")
  assert removal.verdict == paired.DOES_NOT_HOLD and "10 % -1.20" in removal.evidence
  random = _finding(claims, "Random removal costs more")
  assert random.verdict == paired.DOES_NOT_HOLD
  assert "10 % -1.00 [-1.00, -1.00]; 30 % -1.00 [-2.24, +0.24]" in random.evidence
  # Shares 24, 25, 26 % against 40: −16, −15, −14 (sd 1), half-width 4.303 / √3 = 2.48.
  noise = _finding(claims, "Noisy labels are forgotten most")
  assert noise.verdict == paired.DOES_NOT_HOLD and "-15.00 [-17.48, -12.52]" in noise.evidence
  window = _finding(claims, "Removing more-forgotten examples costs more")
  assert window.verdict == paired.DOES_NOT_HOLD and "-1.00 [-1.00, -1.00]" in window.evidence


def test_seeds_that_disagree_leave_a_claim_inconclusive():
  # No removal with seeds off by +0.3, 0, −0.3: forgetting at 30 % − no removal per seed
  # −0.4, −0.1, +0.2 (mean −0.1, sd 0.3, half-width 4.303 · 0.3 / √3 = 0.75), so
  # [−0.85, +0.65]: it may lose more than 0.2 points or none.
  claims = _claims(_accuracy(), jitter={("none", 0, 0): (0.3, 0.0, -0.3)})
  removal = _finding(claims, "A large fraction can be removed")
  assert removal.verdict == paired.UNDECIDED
  assert "30 % -0.10 [-0.85, +0.65]" in removal.evidence


def test_five_seeds_use_their_own_t():
  # Shares 66 … 74 % against 40: mean +30, sd √10 = 3.16, half-width 2.776 · 3.16 / √5 =
  # 3.93.
  noise = [{"seed": s, "shares": {"forgetting": {"k": 66.0 + 2 * s}}, "noise_rate": 20.0}
           for s in range(5)]
  finding = report._noise_finding(noise)  # pylint: disable=protected-access
  assert finding.verdict == paired.HOLDS and "+30.00 [+26.07, +33.93]" in finding.evidence


def _fashion(jitter=None):
  """Fashion-MNIST cells: forgetting 90.5 / 89.0 % and random 90.0 / 88.9 % at 30 / 60 %."""
  accuracy = {("none", 0, 0): 91.0, ("forgetting", 300, 0): 90.5, ("random", 300, 0): 90.0,
              ("forgetting", 600, 0): 89.0, ("random", 600, 0): 88.9}
  runs = _runs(accuracy, jitter, prefix="fashion_")
  return {"order_runs": [r for r in runs if r["ordering"] == "none"],
          "removal_runs": [r for r in runs if r["ordering"] != "none"], "num_train": NUM_TRAIN}


def test_fashion_claim_is_decided_seed_by_seed():
  assert fashion_report.finding(_fashion()).verdict == paired.HOLDS
  # Random at 60 % off by +0.3, 0, −0.3: forgetting − random −0.2, +0.1, +0.4 (mean +0.1,
  # sd 0.3, half-width 0.75), so [−0.65, +0.85]: that size, and the claim, stay open.
  finding = fashion_report.finding(_fashion({("random", 600, 0): (0.3, 0.0, -0.3)}))
  assert finding.verdict == paired.UNDECIDED
  assert finding.evidence == ("test accuracy, Forgetting − Random (points): 30 % +0.50 "
                              "[+0.50, +0.50]; 60 % +0.10 [-0.65, +0.85]")
  stats = {"unforgettable_per_seed": [70.0, 72.0, 74.0], "unforgettable_all_seeds": 60.0,
           "never_learned_per_seed": [0.1, 0.2, 0.3]}
  section = fashion_report.section(_fashion(), stats)
  assert "| 30 % (300) | 90.50 ± 0.08 | 90.00 ± 0.08 |" in section
  assert "**holds**" not in "\n".join(section)  # the verdict is in the claims section


def test_a_partial_grid_leaves_out_the_claims_it_cannot_check():
  accuracy = {key: v for key, v in _accuracy().items() if key[0] != "random"}
  claims = _claims(accuracy, {**_analysis(), "noise": []})
  assert not [c for c in claims if c.text.startswith(("Random", "Noisy"))]
  assert _finding(claims, "A large fraction can be removed")


def test_tables_cover_every_cell():
  cells = report._cells(_runs(_accuracy()))  # pylint: disable=protected-access
  table = report._removal_table(cells, list(SIZES), NUM_TRAIN)  # pylint: disable=protected-access
  # Header, rule, no removal, one row per size; columns: the orderings present everywhere.
  # The population std of −0.1, 0, +0.1 is 0.0816.
  assert len(table) == 3 + len(SIZES)
  assert table[0] == "| removed | Forgetting | Max loss increase | Random |"
  assert table[3] == "| 10 % (100) | 96.20 ± 0.08 | 96.00 ± 0.08 | 95.90 ± 0.08 |"
  window = report._window_table(  # pylint: disable=protected-access
      cells, _analysis(), WINDOW, NUM_TRAIN)
  # Three starts, then the random reference; the 10 % curve cells are the k = 0 windows.
  assert len(window) == 2 + 3 + 1
  assert window[2] == "| 0 % | 0.495 / 96.20 ± 0.08 | -0.901 / 96.00 ± 0.08 |"
  assert window[3] == "| 40 % | 4.5 / 95.80 ± 0.08 | — |"


def test_average_ranks_and_spearman():
  np.testing.assert_array_equal(report.average_ranks(np.asarray([3.0, 1.0, 3.0, 2.0])),
                                [3.5, 1.0, 3.5, 2.0])
  assert report.spearman(np.arange(5.0), np.arange(5.0) ** 3) == pytest.approx(1.0)
  assert report.spearman(np.arange(5.0), -np.arange(5.0)) == pytest.approx(-1.0)


def test_figures_draw_every_panel(tmp_path):
  from experiments import forgetting_mli_figures  # pylint: disable=import-outside-toplevel
  runs = _runs(_accuracy())
  counts = [np.arange(NUM_TRAIN) % 5 for _ in SEEDS]
  analysis = {**_analysis(), "per_seed_counts": counts, "summed_counts": np.sum(counts, 0)}
  for noise in analysis["noise"]:
    noise["shares"] = {name: {p: 10.0 * p for p in report.TOP_PERCENTS}
                       for name in report.NOISE_KEYS}
    noise.update(noisy_counts=np.array([3, 4, 5]), clean_counts=np.array([0, 0, 1]))
  written = forgetting_mli_figures.figures(
      [r for r in runs if not r["k"]], [r for r in runs if r["k"]], analysis,
      str(tmp_path / "f"), num_train=NUM_TRAIN)
  assert written == {"removal": "f_removal.png", "window": "f_window.png",
                     "histogram": "f_forgetting_histogram.png", "noise": "f_noise.png"}
  assert all((tmp_path / name).stat().st_size > 1000 for name in written.values())
