"""Coverage-centric coreset selection (Zheng et al., ICLR 2023; ALGORITHMS.md C.4-C.5).

The second stage of a two-stage pipeline. A ``training_dynamics`` run has written per-example
scores (its ``scores.npz``; several seeds' files are averaged); this method chooses, once, a
coreset of ``(1 − pruning_rate) · N`` training examples from them and trains a fresh model on
that coreset every epoch. Give the run's length in optimizer steps
(``train.num_train_steps``, the paper's iterations): the run stops exactly there, a small
coreset cycles through many short epochs, and a per-step schedule spans exactly those steps.

Rules (``method.rule``):

- ``random``: a uniformly random coreset (needs no score file);
- ``monotonic``: the first examples of the order of ``method.key`` (``descending`` for the
  highest first), optionally ``class_balanced`` (the same fraction of every class);
- ``ccs``: coverage-centric selection: cut the ⌊β · N⌋ examples of lowest
  ``cutoff_key`` (the accumulated margin), split the rest into ``num_strata`` equal-width
  strata of ``key``, allocate the budget from the smallest stratum, sample inside strata.

Ties are broken by one fixed permutation of the example ids from the run seed (or by id),
and CCS samples with the seed's ``coreset`` stream, so a seed always gives the same coreset:
a resumed run trains on exactly the same examples. The run writes ``coreset.npz`` (a score
file over the coreset's ids: the selection score of each), its class histogram in
``summary.json``, and figures of where the coreset lies on the score axis.
"""

import json
import math
import os

import ml_collections
import numpy as np

from jaxsel import artifacts, coresets, selection
from jaxsel.config_errors import choice, is_int, is_real, require
from jaxsel.methods import base
from jaxsel.state import host_rng

CORESET_FILE = "coreset.npz"
TIE_BREAKS = ("random", "index")


def coreset_size(num_examples: int, pruning_rate: float) -> int:
  """⌊(1 − pruning_rate) · N⌋, at least 1. The product is rounded to 6 decimals before the
  floor, so that float error does not lose an example: (1 − 0.9) · 45,000 is
  4499.999999999999 in floating point, and the reference (which is given the ratio 0.1,
  not the rate) keeps 4,500. The reference floors its own product unrounded, int(r · N),
  so where that product lands just below an integer it keeps one example fewer than
  this: ratio 0.7 of 45,000 (0.7 · 45,000 = 31499.999999999996) is 31,499 there and
  31,500 here, and likewise 125,999 against 126,000 of 180,000."""
  return max(1, math.floor(round((1.0 - pruning_rate) * num_examples, 6)))


class Coreset(base.Method):
  """A fresh model trained on a coreset chosen once from a score file."""

  name = "coreset"

  @classmethod
  def default_config(cls) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(
        name=cls.name,
        # scores.npz of training_dynamics runs (or their directories); several,
        # comma-separated, are averaged (one per seed).
        scores_path="",
        rule="ccs",  # random | monotonic | ccs
        key="accumulated_margin",  # the score monotonic sorts by and CCS stratifies
        descending=False,  # monotonic: keep the highest scores (True) or the lowest first
        class_balanced=False,  # monotonic: keep the same fraction of every class
        pruning_rate=0.9,  # the fraction of training examples left out, in [0, 1)
        beta=0.0,  # ccs: the fraction of lowest-cutoff_key examples cut first, in [0, 1)
        cutoff_key="accumulated_margin",  # ccs: the score of the hard-example cutoff
        num_strata=50,  # ccs
        # ccs. False: strata of width (max − min) / num_strata, the last one closed |
        # True: the reference's (1.0001 · max − min) / num_strata with open top edges,
        # which moves 1 to 3 scores in 1,000 one stratum down (coresets.strata; for
        # max <= 0, where the reference loses the top scores, the first rule is kept).
        reference_strata=False,
        tie_break="random",  # random: one permutation of the ids from the seed | index
    ))

  @classmethod
  def check_config(cls, config) -> None:
    method = config.method
    choice(method.rule, "method.rule", coresets.RULES)
    choice(method.tie_break, "method.tie_break", TIE_BREAKS)
    require(is_real(method.pruning_rate) and 0 <= method.pruning_rate < 1,
            "method.pruning_rate", "in [0, 1)", method.pruning_rate)
    require(is_real(method.beta) and 0 <= method.beta < 1, "method.beta", "in [0, 1)",
            method.beta)
    require(is_int(method.num_strata) and method.num_strata >= 1, "method.num_strata",
            "a positive integer", method.num_strata)
    require(isinstance(method.reference_strata, bool), "method.reference_strata",
            "True or False", method.reference_strata)
    if method.rule != "random":
      require(bool(method.scores_path), "method.scores_path",
              f"a score file of a training_dynamics run for rule {method.rule!r}",
              method.scores_path)

  def __init__(self, config, dataset):
    super().__init__(config, dataset)
    method = config.method
    num_train = len(dataset.train_ids)
    self.size = coreset_size(num_train, method.pruning_rate)
    labels = dataset.pool.labels[dataset.train_ids]
    if method.rule == "monotonic" and method.class_balanced:
      num_classes = len(np.unique(labels))
      require(self.size >= num_classes, "method.pruning_rate",
              f"small enough that a class-balanced coreset keeps one example of each of "
              f"the {num_classes} classes (it keeps {self.size})", method.pruning_rate)
    self._scores = None
    if method.rule != "random":
      required = (method.key, method.cutoff_key) if method.rule == "ccs" else (method.key,)
      paths = [p.strip() for p in method.scores_path.split(",") if p.strip()]
      self._scores = artifacts.load_many(
          paths, how="mean", fingerprint=dataset.fingerprint, example_ids=dataset.train_ids,
          required=required, field="method.scores_path")
    self.details = {}
    self.coreset_ids = dataset.train_ids[self._select(labels)]

  def _score(self, name: str) -> np.ndarray:
    return self._scores.for_ids(name, self.dataset.train_ids).astype(np.float64)

  def _select(self, labels: np.ndarray) -> np.ndarray:
    """Positions (into the training ids) of the coreset."""
    method, num_train = self.config.method, len(self.dataset.train_ids)
    if method.rule == "random":
      return coresets.random_coreset(host_rng(self.config.seed, "coreset"), num_train,
                                     self.size)
    ties = np.asarray(base.tie_break(np.int32(self.config.seed), self.dataset.train_ids,
                                     num_ids=len(self.dataset.pool),
                                     by_index=method.tie_break == "index"))
    if method.rule == "monotonic":
      if method.class_balanced:
        return coresets.class_balanced_monotonic(
            self._score(method.key), labels, self.size, descending=method.descending,
            tie_break=ties)
      return coresets.monotonic(self._score(method.key), self.size,
                                descending=method.descending, tie_break=ties)
    positions, self.details = coresets.ccs(
        self._score(method.key), self._score(method.cutoff_key), self.size,
        beta=method.beta, num_strata=method.num_strata,
        rng=host_rng(self.config.seed, "coreset"), tie_break=ties,
        reference_strata=method.reference_strata)
    return positions

  def examples_in_epoch(self, epoch: int) -> int:
    del epoch
    return self.size

  def choose(self, epoch, state, data) -> base.EpochChoice:
    del epoch, data
    return base.EpochChoice(self.coreset_ids, state, True, base.no_costs())

  def finish(self, state, data, workdir, *, fingerprint, num_epochs) -> dict:
    method = self.config.method
    labels = self.dataset.pool.labels
    histogram = selection.class_histogram(labels[self.coreset_ids], self.dataset.num_classes)
    tables = {}
    if self._scores is not None:
      tables[method.key] = self._scores.for_ids(method.key, self.coreset_ids).astype(
          np.float32)
    artifacts.save(os.path.join(workdir, CORESET_FILE), artifacts.ScoreFile(
        example_ids=self.coreset_ids, tables=tables, fingerprint=fingerprint,
        dataset_name=self.dataset.name, num_epochs=num_epochs, seeds=(self.config.seed,),
        config=json.loads(self.config.to_json()),
        extra={"rule": method.rule, "pruning_rate": method.pruning_rate,
               "stratum_sizes": self.details.get("stratum_sizes", np.zeros(0)).tolist(),
               "allocation": self.details.get("allocation", np.zeros(0)).tolist()}))
    if self.config.figures and self._scores is not None:
      self._figures(workdir)
    return {"coreset_size": self.size,
            "coreset_class_histogram": [round(float(p), 3) for p in histogram]}

  def _figures(self, workdir: str) -> None:
    from jaxsel import plotting  # host-only; kept out of the core import path
    method = self.config.method
    all_scores = self._score(method.key)
    chosen = self._scores.for_ids(method.key, self.coreset_ids)
    plotting.coreset_histogram(
        all_scores, chosen, os.path.join(workdir, "coreset_scores.png"),
        score_name=method.key,
        title=f"{method.rule} coreset, {100 * method.pruning_rate:g} % pruned")
    if method.rule == "ccs":
      kept_scores = all_scores[self.details["kept"]]
      plotting.strata_allocation(
          self.details["stratum_sizes"], self.details["allocation"],
          os.path.join(workdir, "coreset_strata.png"), lower=float(kept_scores.min()),
          upper=float(kept_scores.max()), score_name=method.key,
          title=f"CCS strata (β = {method.beta:g}, {method.num_strata} strata)")
