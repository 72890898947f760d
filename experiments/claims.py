"""The claims of every results file, and the one page that lists them all.

Each grid's report decides its paper's claims with ``experiments.paired`` and writes them,
beside its tables, to ``<prefix>_claims.json``; this module renders them, in the report's
own claims section and on ``experiments/results/README.md``:

    python -m experiments.claims   # rewrites README.md from every *_claims.json

A claim's evidence is the paired difference (seed by seed, 95 % Student-t interval) it was
decided on, as text, so a claim about several cells can show each cell's interval.
"""

import dataclasses
import glob
import json
import os
from typing import NamedTuple

from absl import app, flags

from experiments import paired
from jaxsel import files

RESULTS_DIR = os.path.join(os.path.dirname(__file__), "results")
# Every grid's results file and the command that writes it (and its claims file).
GRIDS = {
    "calib_prioritization_tuned_mnist1d_small.md":
        "python -m experiments.calib_prioritization_tuned",
    "calib_prioritization_tuned_fashion_mnist_small.md":
        "python -m experiments.calib_prioritization_tuned --dataset=fashion_mnist_small",
    "calib_prioritization_mnist1d.md": "python -m experiments.calib_prioritization",
    "coverage_centric_coreset_mnist1d.md": "python -m experiments.coverage_centric_coreset",
    "coverage_centric_coreset_fashion_mnist.md":
        "python -m experiments.coverage_centric_coreset --dataset=fashion_mnist",
    "forgetting_mli_mnist1d.md": "python -m experiments.forgetting_mli",
    "budgeted_importance_sampling.md": "python -m experiments.budgeted_importance_sampling",
    "budgeted_importance_sampling_fashion_mnist_small.md":
        "python -m experiments.budgeted_length, then python -m "
        "experiments.budgeted_importance_sampling --datasets=fashion_mnist_small "
        "--cells=augmentation --epochs=fashion_mnist_small=E --num_seeds=5 "
        "--output=experiments/results/budgeted_importance_sampling_fashion_mnist_small",
    "selection_comparison.md": "python -m experiments.selection_comparison",
}
VERDICTS = (paired.HOLDS, paired.DOES_NOT_HOLD, paired.UNDECIDED)


class Finding(NamedTuple):
  """What a report decides about one claim; ``attach`` gives it its paper and regime."""
  text: str
  verdict: str
  evidence: str


@dataclasses.dataclass(frozen=True)
class Claim:
  paper: str  # e.g. "Tata et al. 2022 (calibrated sample prioritization)"
  text: str  # the claim, in the paper's direction
  regime: str  # where it was tested: data, model, length, seeds
  verdict: str  # one of VERDICTS, or "not tested here" with the reason in evidence
  evidence: str  # the paired difference(s) ± CI it rests on, with units
  table: str  # the results file (name inside experiments/results)
  command: str  # the command that produced that file

  def __post_init__(self):
    if self.verdict not in VERDICTS and not self.verdict.startswith("not tested"):
      raise ValueError(f"verdict must be one of {VERDICTS} or 'not tested …', "
                       f"got {self.verdict!r}")


def attach(findings, *, paper: str, regime: str, table: str, command: str) -> list[Claim]:
  """Claims from a report's findings, all tested in one regime and one results file."""
  return [Claim(paper=paper, text=f.text, regime=regime, verdict=f.verdict,
                evidence=f.evidence, table=table, command=command) for f in findings]


def per_cell(diffs: dict | None, direction: int, margin: float = 0.0, *, text: str,
             unit: str, combine=paired.all_hold, decimals: int = 2) -> Finding | None:
  """A claim made of one paired test per part ({label: PairedDifference}, e.g. one per
  cell), the parts' verdicts combined by ``combine`` (every part must hold, by default);
  ``unit`` heads the evidence. None when there are no parts (a cell is missing)."""
  if not diffs:
    return None
  verdict = combine(paired.claim_verdict(d, direction, margin) for d in diffs.values())
  return Finding(text, verdict, f"{unit}: {paired.format_differences(diffs, decimals)}")


def write(path: str, claims: list[Claim]) -> None:
  records = [dataclasses.asdict(c) for c in claims]
  files.write_text(path, json.dumps(records, indent=1, ensure_ascii=False) + "\n")


def read(path: str) -> list[Claim]:
  with open(path) as f:
    return [Claim(**c) for c in json.load(f)]


def section(claims, *, seeds_note: str) -> list[str]:
  """A results file's closing section: each claim (a ``Claim`` or ``Finding``) with its
  verdict and evidence."""
  lines = ["## Which of the paper's claims hold at this scale", "",
           f"Each claim is decided seed by seed ({seeds_note}): the mean paired difference "
           "with its 95 % Student-t interval over seeds. It **holds** when the interval "
           "excludes 0 in the claimed direction, **does not hold** when it excludes 0 the "
           "other way, and is **inconclusive** otherwise.", ""]
  return lines + [f"- {c.text}: **{c.verdict}** — {c.evidence}." for c in claims]


def page(claims: list[Claim], pending=()) -> str:
  """``experiments/results/README.md``: every claim, grouped by paper, then the grids
  (``pending``: (results file, command)) whose claims file has not been written yet."""
  counts = {v: sum(c.verdict == v for c in claims) for v in VERDICTS}
  lines = ["# Every claim tested, and what held", "",
           "Each row is one claim of a reproduced paper, tested on data that runs on a CPU. "
           "Methods are compared seed by seed (the same seed gives the same split, "
           "initialisation and data order); the evidence is the mean paired difference with "
           "its 95 % confidence interval (Student's t over the seeds, sd with n − 1). A claim "
           "**holds** only when the interval excludes 0 in the claimed direction, **does not "
           "hold** when it excludes 0 the other way, and is **inconclusive** otherwise — for "
           "a claim of \"no better than\", inconclusive is consistent with the claim but not "
           "evidence for it. Every verdict belongs to its regime: small models and short "
           "training, so a verdict here says what holds at this scale, not on the paper's.",
           "",
           f"{len(claims)} claims: " + ", ".join(f"{n} {v}" for v, n in counts.items()) + ".",
           "", "Regenerate this page with `python -m experiments.claims` (it reads every "
           "`*_claims.json` the reports write).", ""]
  for paper_name in dict.fromkeys(c.paper for c in claims):
    lines += [f"## {paper_name}", "",
              "| claim | regime | verdict | paired difference [95 % CI] | table and command |",
              "|---|---|---|---|---|"]
    for c in (c for c in claims if c.paper == paper_name):
      lines.append(f"| {_cell(c.text)} | {_cell(c.regime)} | **{c.verdict}** | "
                   f"{_cell(c.evidence)} | [{c.table}]({c.table}): `{_cell(c.command)}` |")
    lines.append("")
  if pending:
    lines += ["## Not decided yet", "",
              "These grids' claims are decided seed by seed once they run; until then no "
              "verdict of theirs is on this page:", ""]
    lines += [f"- {table}: `{command}`" for table, command in pending]
    lines.append("")
  return "\n".join(lines)


def _cell(text: str) -> str:
  """Text safe inside a markdown table cell."""
  return text.replace("|", "\\|").replace("\n", " ")


def collect(results_dir: str = RESULTS_DIR) -> list[Claim]:
  """Every claim of every ``*_claims.json`` in ``results_dir``, file by file (sorted)."""
  return [claim for path in sorted(glob.glob(os.path.join(results_dir, "*_claims.json")))
          for claim in read(path)]


def _link(table: str, results_dir: str) -> str:
  """A results file not yet decided seed by seed: a link to an earlier version's file (with
  mean-based verdicts) where there is one."""
  if os.path.exists(os.path.join(results_dir, table)):
    return f"[{table}]({table}) (the file shown holds an earlier version's verdicts)"
  return f"{table} (not run yet)"


def main(argv):
  del argv
  results_dir = flags.FLAGS.results_dir
  claims = collect(results_dir)
  pending = [(_link(table, results_dir), command) for table, command in GRIDS.items()
             if not os.path.exists(os.path.join(
                 results_dir, table.removesuffix(".md") + "_claims.json"))]
  path = os.path.join(results_dir, "README.md")
  files.write_text(path, page(claims, pending) + "\n")
  print(f"wrote {path} ({len(claims)} claims)")


if __name__ == "__main__":
  # Defined here, not at import: every report imports this module, and a flag defined at
  # import would clash with any other module's of the same name.
  flags.DEFINE_string("results_dir", RESULTS_DIR, "Where the *_claims.json are.")
  app.run(main)
