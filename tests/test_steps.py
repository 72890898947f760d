"""Jitted steps: masking is exact, padding steps are no-ops, no recompiles."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import default
from jaxsel import losses, metrics, models, optim, scores, steps, trackers
from jaxsel.data import iterators
from jaxsel.state import create_train_state
from tests.conftest import override

NUM_EXAMPLES, LENGTH = 96, 40


@pytest.fixture(scope="module")
def data():
  rng = np.random.default_rng(0)
  return {"inputs": jnp.asarray(rng.normal(size=(NUM_EXAMPLES, LENGTH)), jnp.float32),
          "labels": jnp.asarray(rng.integers(0, 10, NUM_EXAMPLES), jnp.int32)}


def _state(use_batchnorm=False, lr=0.1):
  config = override(default.get_config(), **{"optimizer.learning_rate": lr})
  model = models.get_model("cnn1d", num_classes=10, channels=8,
                           use_batchnorm=use_batchnorm)
  return create_train_state(model, optim.make_optimizer(config),
                            rng=jax.random.PRNGKey(0), input_shape=(LENGTH,))


def _step_fn(lr=0.1):
  return functools.partial(steps.train_step, loss_fn=losses.cross_entropy,
                           learning_rate_fn=optax.constant_schedule(lr),
                           schedule_unit="epoch")


@pytest.mark.parametrize("use_batchnorm", [False, True])
def test_padded_batch_updates_like_the_unpadded_batch(data, use_batchnorm):
  real = jnp.arange(5, dtype=jnp.int32)
  padded = jnp.concatenate([real, jnp.array([7, 8, 9], jnp.int32)])
  mask = jnp.array([True] * 5 + [False] * 3)
  step = jax.jit(_step_fn())
  state = _state(use_batchnorm)
  a, sums_a = step(state, steps.gather_batch(data, real, jnp.ones(5, bool)), 0)
  b, sums_b = step(state, steps.gather_batch(data, padded, mask), 0)
  for x, y in zip(jax.tree.leaves((a.params, a.batch_stats)),
                  jax.tree.leaves((b.params, b.batch_stats))):
    np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(sums_a["loss"], sums_b["loss"], rtol=1e-6)
  assert float(sums_b["count"]) == 5


def test_chunk_equals_steps_one_by_one_and_skips_padding_steps(data):
  ids = np.arange(40, dtype=np.int32)
  plan = iterators.full_pass_plan(ids, batch_size=16, steps_per_chunk=4)  # 3 real steps
  chunk = steps.jit_train_chunk(_step_fn(), name="test_chunk_equals")
  state, sums = chunk(_state(), steps.empty_train_sums(), data, plan.example_ids[0],
                      plan.mask[0], np.int32(0))
  manual = _state()
  step = jax.jit(_step_fn())
  for ids_row, mask_row in zip(plan.example_ids[0][:3], plan.mask[0][:3]):
    manual, _ = step(manual, steps.gather_batch(data, ids_row, mask_row), 0)
  assert int(state.step) == 3  # the fourth, all-padding step did not count
  assert float(sums["count"]) == 40
  for x, y in zip(jax.tree.leaves(state.params), jax.tree.leaves(manual.params)):
    np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def test_learning_rate_follows_schedule_position(data):
  schedule = lambda position: 0.1 * (position + 1)  # noqa: E731
  step = jax.jit(functools.partial(steps.train_step, loss_fn=losses.cross_entropy,
                                   learning_rate_fn=schedule, schedule_unit="epoch"))
  batch = steps.gather_batch(data, jnp.arange(8, dtype=jnp.int32), jnp.ones(8, bool))
  state, _ = step(_state(), batch, 4)
  assert float(state.opt_state.hyperparams["learning_rate"]) == pytest.approx(0.5)


def test_no_recompilation_when_the_index_set_changes_size(data):
  chunk = steps.jit_train_chunk(_step_fn(), name="test_retrace")
  state = _state()
  for epoch, size in enumerate([96, 40, 7, 96, 1]):
    plan = iterators.train_plan(np.arange(size), batch_size=8, steps_per_chunk=3,
                                shuffle_seed=(0, epoch))
    for ids, mask in plan.chunks():
      state, _ = chunk(state, steps.empty_train_sums(), data, ids, mask, np.int32(epoch))
    if epoch == 0:
      traces_after_first_epoch = steps.TRACE_COUNTS["test_retrace"]
  assert traces_after_first_epoch == 1
  assert steps.TRACE_COUNTS["test_retrace"] == 1


def test_eval_chunk_matches_metrics_on_all_logits(data):
  state = _state()
  plan = iterators.full_pass_plan(np.arange(NUM_EXAMPLES), batch_size=40, steps_per_chunk=1)
  evaluate = steps.jit_eval_chunk(num_bins=15, reference_binning=False)
  total = metrics.empty_sums(15)
  for ids, mask in plan.chunks():
    total = evaluate(state, total, data, ids, mask)
  logits = steps.predict(state, data["inputs"], jnp.ones(NUM_EXAMPLES, bool))
  direct = metrics.summarize(metrics.calibration_sums(logits, data["labels"]))
  chunked = metrics.summarize(total)
  for key in ("accuracy", "nll", "brier", "ece", "count"):
    np.testing.assert_allclose(chunked[key], direct[key], rtol=1e-5, atol=1e-6)



def test_compile_ahead_fills_the_cache_of_the_real_call(data):
  name = "test_compile_ahead"  # a name of its own: a fresh jitted pass
  evaluate = steps.jit_eval_chunk(num_bins=7, reference_binning=False, name=name)
  state = _state()
  plan = iterators.full_pass_plan(np.arange(30), batch_size=8, steps_per_chunk=2)
  ids, mask = next(iter(plan.chunks()))
  main_seconds = steps.CompileClock.seconds()
  all_seconds = steps.CompileClock.seconds(all_threads=True)
  evaluate.compile_ahead(state, metrics.empty_sums(7), data, ids, mask).result()
  assert steps.TRACE_COUNTS[name] == 1
  # The background thread's compile time is not charged to this thread's clock.
  assert steps.CompileClock.seconds() == main_seconds
  assert steps.CompileClock.seconds(all_threads=True) > all_seconds
  compilations = steps.CompileClock.compilations()
  total = metrics.empty_sums(7)
  for ids, mask in plan.chunks():
    total = evaluate(state, total, data, ids, mask)
  assert float(total.count) == 30
  assert steps.CompileClock.compilations() == compilations  # ran the compiled program
  assert steps.TRACE_COUNTS[name] == 1

def _tracked_state():
  tracker = trackers.combine({"last_entropy": trackers.last_score(scores.entropy)})
  state = _state()
  return state.replace(trackers=tracker.init(NUM_EXAMPLES)), tracker


def test_train_step_scores_only_the_trained_examples_the_rest_stay_stale(data):
  state, tracker = _tracked_state()
  state = state.replace(trackers={"last_entropy": jnp.full(NUM_EXAMPLES, -1.0)})
  subset = np.array([3, 10, 11, 40, 95], np.int32)
  plan = iterators.train_plan(subset, batch_size=4, steps_per_chunk=2, shuffle_seed=(0, 0))
  chunk = steps.jit_train_chunk(functools.partial(_step_fn(),
                                                  update_trackers=tracker.update),
                                name="test_stale")
  for ids, mask in plan.chunks():
    state, _ = chunk(state, steps.empty_train_sums(), data, ids, mask, np.int32(0))
  table = np.asarray(state.trackers["last_entropy"])
  others = np.setdiff1d(np.arange(NUM_EXAMPLES), subset)
  assert np.all(table[others] == -1.0)  # padding rows (id 0) wrote nothing either
  assert np.all((table[subset] > 0) & (table[subset] <= 1))


def test_mixup_scores_the_mixed_or_the_unmixed_view(data):
  state, tracker = _tracked_state()
  batch = steps.gather_batch(data, jnp.arange(8, dtype=jnp.int32), jnp.ones(8, bool))
  run = lambda **kw: jax.jit(functools.partial(  # noqa: E731
      _step_fn(), update_trackers=tracker.update, mixup_alpha=1.0, **kw))(state, batch, 0)
  mixed, _ = run(score_unmixed_view=False)
  unmixed, _ = run(score_unmixed_view=True)
  # The un-mixed view is the entropy of a train-mode forward of the clean inputs with the
  # parameters before the update.
  clean_logits = state.apply_fn({"params": state.params}, batch["inputs"], train=True,
                                mask=batch["mask"])
  np.testing.assert_allclose(unmixed.trackers["last_entropy"][:8],
                             scores.entropy(clean_logits), rtol=1e-5, atol=1e-6)
  assert not np.allclose(mixed.trackers["last_entropy"][:8], scores.entropy(clean_logits),
                         atol=1e-4)
  # Either way the update itself is the same.
  for x, y in zip(jax.tree.leaves(mixed.params), jax.tree.leaves(unmixed.params)):
    np.testing.assert_array_equal(x, y)
