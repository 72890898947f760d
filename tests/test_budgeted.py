"""Budgeted importance sampling end to end: budget sizes, the epoch draw of unif/p/c-SGD,
selective backprop's percentile / ring buffer / queue by hand, and selective backprop with
β = 0 agreeing with standard training step for step."""

import math
import os

import jax.numpy as jnp
import numpy as np
import pytest

from jaxsel import artifacts, compilation, files, importance, train
from jaxsel.methods import budgeted, selective_backprop as sb
from tests.conftest import override, with_method

# Budgeted runs: drop-last batches and the per-step linear decay that ends at the last step.
BUDGET_FIELDS = {"train.drop_remainder": True, "schedule.name": "linear",
                 "schedule.unit": "step", "schedule.end_at_last_step": True,
                 "schedule.end_learning_rate": 1e-6, "checkpoint.every_epochs": 0}


@pytest.mark.parametrize("budget,num,size", [(0.3, 50_000, 15_000), (0.7, 45_000, 31_500),
                                             (1.0, 7, 7), (1e-9, 10, 1), (0.25, 3_600, 900)])
def test_budget_size_is_the_floor_without_float_loss(budget, num, size):
  assert importance.budget_size(num, budget) == size


def test_budget_size_keeps_one_more_than_the_references_unrounded_floor():
  # 45,000 · 0.7 = 31499.999999999996 in floating point: the reference's int(N · b) trains
  # on 31,499 per epoch, the rounded floor here on 31,500 (and 126,000 against 125,999).
  assert int(45000 * 0.7) == 31499 and importance.budget_size(45000, 0.7) == 31500
  assert int(180000 * 0.7) == 125999 and importance.budget_size(180000, 0.7) == 126000


def test_coverage_entropy_by_hand():
  assert importance.coverage_entropy(np.full(8, 3)) == pytest.approx(math.log(8))
  # Counts (2, 1, 1, 0): p = (1/2, 1/4, 1/4): H = 1.5 ln 2.
  assert importance.coverage_entropy(np.array([2, 1, 1, 0])) == pytest.approx(1.5 * math.log(2))
  assert importance.coverage_entropy(np.zeros(4)) == 0.0


def _draw(difficulty, *, sampler, smoothing, k, epoch=0, seed=0, counts=None):
  difficulty = jnp.asarray(difficulty, jnp.float32)
  counts = jnp.zeros(difficulty.shape, jnp.int32) if counts is None else counts
  train_ids = jnp.arange(difficulty.shape[0], dtype=jnp.int32)
  return budgeted.draw_subset(np.int32(seed), np.int32(epoch), difficulty, counts, train_ids,
                              sampler=sampler, smoothing=smoothing, k=k)


def test_p_sgd_without_smoothing_never_draws_a_zero_weight_while_others_remain():
  # Difficulty 0 (learned) for even ids, 0.8 for odd ids: without ε only odd ids carry
  # weight, so a draw of half the ids is exactly the odd ones, in every epoch.
  difficulty = np.where(np.arange(10) % 2, 0.8, 0.0)
  for epoch in range(5):
    ids, counts = _draw(difficulty, sampler="p", smoothing=False, k=5, epoch=epoch)
    np.testing.assert_array_equal(ids, [1, 3, 5, 7, 9])
    np.testing.assert_array_equal(counts, np.arange(10) % 2)


@pytest.mark.parametrize("sampler,value", [("p", 0.0), ("c", 1.0)])
def test_all_zero_weights_draw_uniform_epochs_as_the_reference(sampler, value):
  # Every difficulty 0 (p-SGD) or every ŝ = 1 (c-SGD: ŝ(1 − ŝ) = 0): every weight is 0,
  # ε too, and the reference's 1e-10 on each weight makes the epoch a uniform draw. k = 5
  # of 10 over 1,000 epochs: each id Binomial(1000, 1/2), std √250 ≈ 15.8.
  difficulty = np.full(10, value)
  counts = jnp.zeros(10, jnp.int32)
  first_five = 0
  for epoch in range(1000):
    ids, counts = _draw(difficulty, sampler=sampler, smoothing=True, k=5, epoch=epoch,
                        counts=counts)
    first_five += int(np.array_equal(ids, np.arange(5)))
  np.testing.assert_array_less(np.abs(np.asarray(counts) - 500), 5 * math.sqrt(250))
  assert first_five < 20  # 1 / C(10, 5) = 1/252 of the epochs: about 4


def test_p_sgd_with_smoothing_inclusion_frequencies_follow_successive_sampling():
  # Two ids of weight 0 + ε and two of 1 + ε with ε = 0.5 (raw weights 0, 0, 1, 1): draws
  # of k = 1 pick an easy id with probability 2 · 0.5 / 4 = 1/4.
  difficulty = np.array([0.0, 0.0, 1.0, 1.0])
  counts = jnp.zeros(4, jnp.int32)
  for epoch in range(2000):
    _, counts = _draw(difficulty, sampler="p", smoothing=True, k=1, epoch=epoch,
                      counts=counts)
  easy = float(np.asarray(counts)[:2].sum()) / 2000
  assert abs(easy - 0.25) < 5 * math.sqrt(0.25 * 0.75 / 2000)


def test_draws_are_distinct_sorted_seeded_and_change_with_the_epoch():
  difficulty = np.full(50, importance.UNSEEN)
  first, _ = _draw(difficulty, sampler="c", smoothing=True, k=20, epoch=3)
  again, _ = _draw(difficulty, sampler="c", smoothing=True, k=20, epoch=3)
  other, _ = _draw(difficulty, sampler="c", smoothing=True, k=20, epoch=4)
  np.testing.assert_array_equal(first, again)
  assert len(np.unique(first)) == 20 and np.all(np.diff(np.asarray(first)) > 0)
  assert not np.array_equal(first, other)


def test_percentiles_are_strictly_less_counts_over_the_filled_history():
  history = jnp.asarray([1.0, 2.0, 3.0, 4.0, 9.0, 9.0])  # only the first 4 are filled
  losses = jnp.asarray([0.5, 2.0, 2.5, 4.0, 100.0])
  np.testing.assert_allclose(sb.percentiles(losses, history, jnp.int32(4)),
                             [0.0, 0.25, 0.5, 0.75, 1.0])
  # The largest loss of the history itself ranks (n − 1)/n, never 1.
  np.testing.assert_allclose(sb.percentiles(jnp.asarray([4.0]), history, jnp.int32(4)),
                             [0.75])


def test_ring_append_wraps_around_and_skips_padding_rows():
  history = jnp.zeros(5)
  history, filled, slot = sb.ring_append(history, jnp.int32(0), jnp.int32(0),
                                         jnp.asarray([1.0, 2.0, 3.0]),
                                         jnp.asarray([True, True, True]))
  history, filled, slot = sb.ring_append(history, filled, slot,
                                         jnp.asarray([4.0, -1.0, 5.0, 6.0]),
                                         jnp.asarray([True, False, True, True]))
  np.testing.assert_array_equal(history, [6.0, 2.0, 3.0, 4.0, 5.0])
  assert int(filled) == 5 and int(slot) == 1


def test_queue_keeps_batch_order_and_dequeues_a_full_batch():
  queue = {"ids": jnp.zeros(6, jnp.int32)}  # batch size 3, capacity 6
  queue, size = sb.enqueue(queue, jnp.int32(0), {"ids": jnp.asarray([10, 11, 12])},
                           jnp.asarray([False, True, True]))
  queue, size = sb.enqueue(queue, size, {"ids": jnp.asarray([13, 14, 15])},
                           jnp.asarray([True, False, True]))
  assert int(size) == 4
  np.testing.assert_array_equal(queue["ids"][:4], [11, 12, 13, 15])
  np.testing.assert_array_equal(sb.dequeue(queue, 3)["ids"], [15, 0, 0, 0, 0, 0])


def _budget_config(tiny_config, method, **fields):
  return with_method(tiny_config, method, **{**BUDGET_FIELDS, **fields})


def test_budgeted_run_trains_on_the_budget_and_reports_coverage(tiny_config, tmp_path):
  config = _budget_config(tiny_config, "budgeted", **{"method.budget": 0.25,
                                                      "method.sampler": "p"})
  workdir = str(tmp_path / "p")
  summary = train.train_and_evaluate(config, workdir)
  records = files.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
  # 900 of 3,600 examples per epoch, 14 full batches of 64.
  assert [r["num_selected"] for r in records] == [900] * 3
  assert [r["num_steps"] for r in records] == [14] * 3
  assert summary["num_train_examples_seen"] == 3 * 14 * 64
  # The last step runs at the end rate (float32: 0.05 + (1e-6 − 0.05) is 1e-6 to ~2e-9).
  assert records[-1]["lr"] == pytest.approx(1e-6, abs=1e-8)
  counts = artifacts.load(os.path.join(workdir, budgeted.COUNTS_FILE))
  selection_count = counts.table("selection_count")
  assert selection_count.sum() == 3 * 900 and selection_count.max() <= 3
  assert summary["coverage_entropy"] == pytest.approx(
      importance.coverage_entropy(selection_count))
  assert summary["coverage_entropy"] < summary["coverage_entropy_max"] == pytest.approx(
      math.log(3600))
  # Every example trained on has a difficulty in [0, 1]; the others are still unseen.
  difficulty = counts.table("difficulty")
  assert np.all((difficulty >= 0) & (difficulty <= 1) | (difficulty == importance.UNSEEN))


def test_selective_backprop_with_beta_zero_is_standard_training(tiny_config, tmp_path):
  """β = 0 keeps every example, so each loader batch becomes one step on exactly that
  batch, at the same learning rate: the same model as full-data training."""
  sb_summary = train.train_and_evaluate(
      _budget_config(tiny_config, "selective_backprop", **{"method.beta": 0.0}),
      str(tmp_path / "sb"))
  full_summary = train.train_and_evaluate(_budget_config(tiny_config, "full_data"),
                                          str(tmp_path / "full"))
  assert sb_summary["num_train_examples_seen"] == full_summary["num_train_examples_seen"]
  assert sb_summary["backprop_fraction"] == pytest.approx(56 * 64 / 3600)
  for key in ("test_accuracy", "test_nll"):
    assert sb_summary[key] == pytest.approx(full_summary[key], rel=1e-5, abs=1e-5)


def test_selective_backprop_counts_its_passes_and_flushes(tiny_config, tmp_path):
  config = _budget_config(tiny_config, "selective_backprop",
                          **{"method.beta": 3.0, "method.history_size": 256})
  workdir = str(tmp_path / "sb3")
  compilations = {}

  def count(epoch, record):
    del record
    compilations[epoch] = compilation.CompileClock.compilations()

  summary = train.train_and_evaluate(config, workdir, on_epoch_end=count)
  # Fixed shapes: epochs that keep different numbers of examples compile nothing new.
  assert compilations[2] == compilations[1]
  records = files.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
  backprop = [r["num_backpropagated"] for r in records]
  assert backprop[0] == 56 * 64  # the priming epoch keeps every loader batch
  # β = 3 keeps about 1/4 afterwards; the remainder is flushed, so counts need not be
  # multiples of the batch size.
  for count in backprop[1:]:
    assert 0.12 * 3584 < count < 0.40 * 3584
  counts = artifacts.load(os.path.join(workdir, budgeted.COUNTS_FILE)).table(
      "selection_count")
  assert counts.sum() == sum(backprop) == summary["num_train_examples_seen"]
  assert summary["examples_forwarded"] == 3 * 3584 + sum(backprop)
  assert summary["backprop_fraction"] == pytest.approx(sum(backprop) / (3 * 3600))


@pytest.mark.parametrize("method,field,value,match", [
    ("budgeted", "method.budget", 0.0, r"config.method.budget must be in \(0, 1\]"),
    ("budgeted", "method.budget", 1.5, r"config.method.budget must be in \(0, 1\]"),
    ("budgeted", "method.sampler", "q", "unknown config.method.sampler 'q'; valid: c, p, unif"),
    ("budgeted", "method.difficulty", "max", "unknown config.method.difficulty"),
    ("selective_backprop", "method.beta", -1.0, "config.method.beta must be a finite real"),
    ("selective_backprop", "method.history_size", 10,
     r"config.method.history_size must be an integer >= train.batch_size \(64\)"),
])
def test_bad_budget_input_fails_before_training_naming_the_field(tiny_config, tmp_path, method,
                                                                 field, value, match):
  workdir = tmp_path / "bad"
  with pytest.raises(ValueError, match=match):
    train.train_and_evaluate(_budget_config(tiny_config, method, **{field: value}),
                             str(workdir))
  assert not workdir.exists() or not any(workdir.iterdir())


def test_end_at_last_step_reaches_the_end_rate_on_the_last_step():
  from configs import default
  from jaxsel import optim
  config = override(default.get_config(), **{"schedule.name": "linear",
                                             "schedule.unit": "step",
                                             "schedule.end_learning_rate": 1e-6,
                                             "optimizer.learning_rate": 0.1})
  faithful = optim.make_schedule(override(config, **{"schedule.end_at_last_step": True}),
                                 epoch_steps=[4, 4])
  # lr0 + (1e-6 − lr0) · s / (T − 1), T = 8 (ALGORITHMS.md B.6).
  expected = [0.1 + (1e-6 - 0.1) * s / 7 for s in range(8)]
  np.testing.assert_allclose([faithful(s) for s in range(8)], expected, rtol=1e-6)
  usual = optim.make_schedule(config, epoch_steps=[4, 4])
  assert float(usual(7)) == pytest.approx(0.1 + (1e-6 - 0.1) * 7 / 8, rel=1e-6)


@pytest.mark.parametrize("method,fields", [
    ("budgeted", {"method.sampler": "c", "mixing.name": "ricap"}),
    ("selective_backprop", {"method.beta": 2.0, "mixing.name": "mixup"}),
])
def test_resumed_budgeted_runs_end_with_the_uninterrupted_numbers(tiny_config, tmp_path,
                                                                  method, fields):
  """The difficulty tables, selection counts, loss history and the queue of kept examples
  are all in the checkpoint, so a killed run resumes to the same numbers."""
  from tests.test_train import assert_killed_run_resumes_to
  config = _budget_config(tiny_config, method, **{**fields, "checkpoint.every_epochs": 1})
  train.train_and_evaluate(config, str(tmp_path / "reference"))
  assert_killed_run_resumes_to(config, str(tmp_path / "reference"), str(tmp_path / "killed"))
