"""experiments/claims.py: the claim records, their files and the claims page."""

import os

import pytest

from experiments import claims, paired


def _claim(paper="P", verdict=paired.HOLDS, text="a beats b"):
  return claims.Claim(paper=paper, text=text, regime="MNIST-1D, 5 seeds", verdict=verdict,
                      evidence="Δ +1.00 [+0.50, +1.50] points", table="t.md",
                      command="python -m experiments.x")


def test_round_trip_and_page(tmp_path):
  first = [_claim(), _claim(verdict=paired.UNDECIDED, text="c | d")]
  second = [_claim(paper="Q", verdict=paired.DOES_NOT_HOLD)]
  claims.write(str(tmp_path / "a_claims.json"), first)
  claims.write(str(tmp_path / "b_claims.json"), second)
  assert claims.read(str(tmp_path / "a_claims.json")) == first
  collected = claims.collect(str(tmp_path))
  assert collected == first + second
  text = claims.page(collected)
  assert "3 claims: 1 holds, 1 does not hold, 1 inconclusive." in text
  assert text.index("## P") < text.index("## Q")
  assert "| c \\| d |" in text  # a pipe inside a cell is escaped
  assert text.count("[t.md](t.md): `python -m experiments.x`") == 3


def test_section_lists_each_claim_with_its_verdict():
  lines = claims.section([_claim()], seeds_note="5 seeds")
  assert lines[-1] == "- a beats b: **holds** — Δ +1.00 [+0.50, +1.50] points."
  assert "5 seeds" in lines[2]


def test_unknown_verdict_is_refused():
  with pytest.raises(ValueError, match="verdict must be one of"):
    _claim(verdict="maybe")
  assert _claim(verdict="not tested here: no run").verdict.startswith("not tested")


def test_grids_without_a_claims_file_are_listed_as_not_decided():
  text = claims.page([_claim()], pending=[("x.md", "python -m experiments.x")])
  assert "## Not decided yet" in text and "- x.md: `python -m experiments.x`" in text
  assert "## Not decided yet" not in claims.page([_claim()])
  for table, command in claims.GRIDS.items():  # every grid named exists as a module
    module = command.split()[2].rstrip(",")
    assert os.path.exists(module.replace(".", "/") + ".py"), (table, module)


def test_per_cell_combines_each_parts_verdict():
  up = paired.paired_difference({0: 2.0, 1: 3.0, 2: 2.5}, {0: 1.0, 1: 1.0, 2: 1.0})
  open_ = paired.paired_difference({0: 2.0, 1: 0.0, 2: 1.0}, {0: 1.0, 1: 1.0, 2: 1.0})
  finding = claims.per_cell({"up": up, "open": open_}, 1, text="a beats b", unit="Δ (points)")
  # "up" holds (+1.50 [+0.26, +2.74]); "open" (+1, −1, 0) does not decide: not every part.
  assert finding.verdict == paired.UNDECIDED
  assert finding.evidence == "Δ (points): up +1.50 [+0.26, +2.74]; open +0.00 [-2.48, +2.48]"
  assert claims.per_cell({"up": up, "open": open_}, 1, text="t", unit="u",
                         combine=paired.some_hold).verdict == paired.HOLDS
  # With a margin of −2 "up" ([+0.26, +2.74]) lies wholly above it.
  assert claims.per_cell({"up": up}, 1, -2.0, text="t", unit="u").verdict == paired.HOLDS
  assert claims.per_cell(None, 1, text="t", unit="u") is None
  assert claims.per_cell({}, 1, text="t", unit="u") is None
