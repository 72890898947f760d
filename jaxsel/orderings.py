"""Orderings of the training examples for removal experiments (ALGORITHMS.md D.3-D.5).

From the score files of ``training_dynamics`` runs (one per seed, same data), one score per
example and run, combined over the runs and sorted ascending:

- ``forgetting`` (Toneva et al., ICLR 2019): forgetting events, and for an example never
  classified correctly in a run, that run's number of presentations T (it counts as
  maximally forgettable); summed over runs. Score 0 over every run: "unforgettable".
- ``max_loss_increase``: the largest loss increase between consecutive presentations
  (D.4); ``relative`` divides each increase by the previous loss + δ, ``clip_at_zero``
  maps a loss that never went up to 0 (otherwise its score is negative); summed over runs.
- ``gradient_loss`` in one of two forms (D.5; no source defines it, so the form is part of
  every result): ``trajectory_slope``, the least-squares slope of the loss against the
  presentation (summed over runs; most negative = learned fastest), or ``grad_norm``, each
  example's loss-gradient norm at a chosen epoch (averaged over runs).

``aggregation`` (sum | mean | max over runs) overrides those defaults; sum and mean give
the same order when every example has the same number of runs. ``absolute`` scores each
run by the magnitude |s| before aggregating (for the slope: how much the loss moves,
whichever way), and ``descending`` sorts from the highest combined score (rank 0 = highest;
for the slope: the examples whose loss rose most, or fell least, go first).

Ties are broken by one uniformly random permutation of the examples from
``host_rng(seed, "tie_break")`` (``tie_break='random'``, seed 0 by default) or by example id
(``'index'``), never by the sort's implementation: forgetting counts tie in the thousands
(ALGORITHMS.md D.10.2).

The result is written as a score file (``jaxsel.artifacts``) over the training ids with the
int32 table ``rank`` (0 = lowest score, removed first by ``removal.keep_lowest_n = 0``) and
the float32 table ``score``; its ``extra`` records how it was made. Command line:

    python -m jaxsel.orderings --scores=RUN0,RUN1,RUN2 --key=forgetting --out=forgetting.npz

A mistake on the command line (a bad flag or value, a score file that is missing, damaged or
of other data) is one line on stderr naming the flag, and exit status 2 (``jaxsel.cli``).
"""

import argparse
import dataclasses
import os
from collections.abc import Sequence

import numpy as np

from jaxsel import artifacts
from jaxsel.config_errors import UserError, is_int, one_line
from jaxsel.state import host_rng

KEYS = ("forgetting", "max_loss_increase", "gradient_loss")
GRADIENT_LOSS_FORMS = ("trajectory_slope", "grad_norm")
AGGREGATIONS = ("sum", "mean", "max")
TIE_BREAKS = ("random", "index")
_COMBINE = {"sum": np.sum, "mean": np.mean, "max": np.max}


# Errors name the command-line flag (= the ``OrderingSpec`` field): orderings are made by
# ``python -m jaxsel.orderings``, not by a run's config.
def _choice(value, flag: str, valid) -> None:
  if value not in valid:
    raise UserError(f"unknown --{flag} {value!r}; valid: {', '.join(valid)}")


def _require(condition: bool, flag: str, allowed: str, value) -> None:
  if not condition:
    raise UserError(f"--{flag} must be {allowed}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class OrderingSpec:
  """How to score and order; ``aggregation=''`` means the key's default (see module)."""
  key: str = "forgetting"
  gradient_loss_form: str = "trajectory_slope"
  aggregation: str = ""
  clip_at_zero: bool = False
  relative: bool = False
  absolute: bool = False  # order by |per-run score|
  descending: bool = False  # rank 0 = the highest combined score
  tie_break: str = "random"
  seed: int = 0

  def check(self) -> None:
    """Raises UserError naming the flag (= field) for a value that cannot work."""
    _choice(self.key, "key", KEYS)
    _choice(self.gradient_loss_form, "gradient_loss_form", GRADIENT_LOSS_FORMS)
    if self.aggregation:
      _choice(self.aggregation, "aggregation", AGGREGATIONS)
    _choice(self.tie_break, "tie_break", TIE_BREAKS)
    _require(is_int(self.seed) and self.seed >= 0, "seed", "an integer >= 0", self.seed)

  @property
  def how(self) -> str:
    """The aggregation over runs actually used."""
    if self.aggregation:
      return self.aggregation
    grad_norm = self.key == "gradient_loss" and self.gradient_loss_form == "grad_norm"
    return "mean" if grad_norm else "sum"

  @property
  def table(self) -> str:
    """The score-file table the per-run score is computed from."""
    if self.key == "forgetting":
      return "forgetting"
    if self.key == "max_loss_increase":
      return "max_relative_loss_increase" if self.relative else "max_loss_increase"
    return "loss_slope" if self.gradient_loss_form == "trajectory_slope" else "grad_norm"

  def describe(self) -> dict:
    """What a result made with this ordering must record."""
    out = {"key": self.key, "aggregation": self.how, "tie_break": self.tie_break,
           "tie_break_seed": self.seed}
    if self.key == "max_loss_increase":
      out.update(clip_at_zero=self.clip_at_zero, relative=self.relative)
    if self.key == "gradient_loss":
      out["gradient_loss_form"] = self.gradient_loss_form
    # Only when set, so that orderings made before these options describe themselves alike.
    out.update({name: True for name in ("absolute", "descending") if getattr(self, name)})
    return out


def run_score(score_file: artifacts.ScoreFile, spec: OrderingSpec) -> np.ndarray:
  """One run's score of every example of ``score_file``: float64 [N]."""
  values = score_file.table(spec.table).astype(np.float64)
  if spec.key == "forgetting":
    # T for an example never learned, whatever ``never_learned_value`` the run used.
    presentations = score_file.table("presentations").astype(np.float64)
    return np.where(score_file.table("never_learned"), presentations, values)
  if spec.key == "max_loss_increase" and spec.clip_at_zero:
    values = np.maximum(values, 0.0)
  return np.abs(values) if spec.absolute else values


def ascending_order(scores: np.ndarray, tie_ranks: np.ndarray) -> np.ndarray:
  """Row indices sorting ``scores`` ascending, equal scores by ascending ``tie_ranks``."""
  return np.lexsort((tie_ranks, scores))


def _required(spec: OrderingSpec) -> tuple[str, ...]:
  if spec.key == "forgetting":
    return ("forgetting", "never_learned", "presentations")
  return (spec.table,)


def _check_same_data(runs: Sequence[artifacts.ScoreFile], paths: Sequence[str]) -> None:
  """Every run must score the same examples of the same data as the first: one ordering
  ranks one set of ids, and seeds of other data would mix unrelated scores."""
  first = runs[0]
  for run, path in zip(runs[1:], paths[1:]):
    if run.fingerprint != first.fingerprint:
      differs = f"fingerprint {run.fingerprint} vs {first.fingerprint}"
    elif not np.array_equal(run.example_ids, first.example_ids):
      differs = f"example ids ({run.example_ids.size} vs {first.example_ids.size} ids)"
    else:
      continue
    raise UserError(f"--scores {path!r} was made on other data than {paths[0]!r} "
                    f"({differs}); give the score files of runs on the same dataset, train "
                    "fraction and split seed")


def _check_distinct_seeds(runs: Sequence[artifacts.ScoreFile],
                          paths: Sequence[str]) -> None:
  first_with = {}
  for run, path in zip(runs, paths):
    for seed in run.seeds:
      if seed in first_with:
        raise UserError(f"--scores {path!r} and {first_with[seed]!r} both hold seed "
                        f"{seed}; give score files of distinct seeds (one seed twice would "
                        "count it twice)")
      first_with[seed] = path


def _table_flags(spec: OrderingSpec) -> str:
  """The flags that chose ``spec.table``, for an error about a file lacking it."""
  if spec.key == "max_loss_increase" and spec.relative:
    return "--key=max_loss_increase --relative"
  if spec.key == "gradient_loss":
    return f"--key=gradient_loss --gradient_loss_form={spec.gradient_loss_form}"
  return f"--key={spec.key}"


def _check_tables(run: artifacts.ScoreFile, path: str, spec: OrderingSpec) -> None:
  missing = [name for name in _required(spec) if name not in run.tables]
  if not missing:
    return
  # The one table a default training_dynamics run does not write.
  hint = ("; gradient norms are computed by training_dynamics runs with "
          "--config.method.grad_norm_epoch=E (E >= 1)" if "grad_norm" in missing else "")
  raise UserError(f"--scores {path!r} lacks the tables {', '.join(missing)} that "
                  f"{_table_flags(spec)} reads (available: "
                  f"{', '.join(sorted(run.tables)) or 'none'}){hint}")


def _load_runs(paths: Sequence[str], spec: OrderingSpec) -> list[artifacts.ScoreFile]:
  _require(len(paths) > 0, "scores", "at least one score file", paths)
  runs = [artifacts.load(path, source="--scores") for path in paths]
  for run, path in zip(runs, paths):
    _check_tables(run, path, spec)
  _check_same_data(runs, paths)
  _check_distinct_seeds(runs, paths)
  return runs


def build(paths: Sequence[str], spec: OrderingSpec) -> artifacts.ScoreFile:
  """The ordering of the examples of the score files at ``paths`` (one per seed)."""
  spec.check()
  runs = _load_runs(paths, spec)
  per_run = np.stack([run_score(run, spec) for run in runs])
  scores = _COMBINE[spec.how](per_run, axis=0)
  ids = runs[0].example_ids
  if spec.tie_break == "index":
    ties = np.arange(len(ids))
  else:
    ties = host_rng(spec.seed, "tie_break").permutation(len(ids))
  rank = np.empty(len(ids), np.int32)
  # Descending sorts the negated scores, so ties still follow the same permutation.
  rank[ascending_order(-scores if spec.descending else scores, ties)] = np.arange(
      len(ids), dtype=np.int32)
  return artifacts.ScoreFile(
      example_ids=ids, tables={"rank": rank, "score": scores.astype(np.float32)},
      fingerprint=runs[0].fingerprint, dataset_name=runs[0].dataset_name,
      num_epochs=runs[0].num_epochs, seeds=tuple(sorted(s for r in runs for s in r.seeds)),
      config=runs[0].config,
      extra={"ordering": spec.describe(), "num_runs": len(runs),
             "sources": [os.path.abspath(p) for p in paths],
             "zero_score_fraction": float(np.mean(scores == 0))})


def ordered_ids(ordering: artifacts.ScoreFile) -> np.ndarray:
  """The example ids from the lowest score to the highest (D.6's sorted list O)."""
  return ordering.example_ids[np.argsort(ordering.table("rank"), kind="stable")]


class _ArgumentParser(argparse.ArgumentParser):
  """argparse whose usage errors are UserErrors: one line and exit status 2 via jaxsel.cli,
  instead of a usage block and the error printed by argparse itself."""

  def error(self, message: str):
    raise UserError(f"{one_line(message)} (see {self.prog} --help)")


def _parser() -> argparse.ArgumentParser:
  parser = _ArgumentParser(
      prog="python -m jaxsel.orderings",
      description="Orders training examples by forgetting, max loss increase or gradient "
      "loss (ascending unless --descending), from training_dynamics score files of several "
      "seeds.")
  parser.add_argument("--scores", required=True,
                      help="comma-separated score files or run directories, one per seed")
  parser.add_argument("--out", required=True, help="the ordering file to write (.npz)")
  parser.add_argument("--key", default="forgetting", help=" | ".join(KEYS))
  parser.add_argument("--gradient_loss_form", default="trajectory_slope",
                      help=" | ".join(GRADIENT_LOSS_FORMS))
  parser.add_argument("--aggregation", default="",
                      help=" | ".join(AGGREGATIONS) + " (default: the key's)")
  parser.add_argument("--clip_at_zero", action="store_true")
  parser.add_argument("--relative", action="store_true")
  parser.add_argument("--absolute", action="store_true",
                      help="order by the magnitude |score| of each run")
  parser.add_argument("--descending", action="store_true",
                      help="rank 0 = the highest score (default: the lowest)")
  parser.add_argument("--tie_break", default="random", help=" | ".join(TIE_BREAKS))
  parser.add_argument("--seed", type=int, default=0, help="seed of the random tie-break")
  from jaxsel import cli  # pylint: disable=import-outside-toplevel
  # Read by cli.run itself; declared so that the parser accepts it.
  parser.add_argument(cli.TRACEBACK_FLAG, action="store_true",
                      help="show the traceback of every error (for bug reports)")
  return parser


def main(argv: Sequence[str] | None = None) -> None:
  """Parses ``argv`` (the flags, without the program name) and writes the ordering.

  Raises UserError, naming the flag, for a bad command line or score file.
  """
  args = _parser().parse_args(argv)
  if not args.out.endswith(".npz"):
    raise UserError(f"--out must name a .npz file, got {args.out!r}")
  spec = OrderingSpec(key=args.key, gradient_loss_form=args.gradient_loss_form,
                      aggregation=args.aggregation, clip_at_zero=args.clip_at_zero,
                      relative=args.relative, absolute=args.absolute,
                      descending=args.descending, tie_break=args.tie_break, seed=args.seed)
  paths = [p.strip() for p in args.scores.split(",") if p.strip()]
  ordering = build(paths, spec)
  path = artifacts.save(args.out, ordering)
  print(f"{len(ordering.example_ids)} examples ordered by {spec.describe()} over "
        f"{ordering.extra['num_runs']} run(s); {100 * ordering.extra['zero_score_fraction']:.1f}"
        f" % have score 0 -> {path}")


if __name__ == "__main__":
  # The command line is harness: the library part of this module does not import it.
  from jaxsel import cli  # pylint: disable=import-outside-toplevel
  # cli.run passes sys.argv whole; main takes the flags alone.
  cli.run(lambda argv: main(argv[1:]))
