"""Jitted steps: masking is exact, padding steps are no-ops, no recompiles, what the trackers
see, augmentation inside the step, and eval-mode score passes."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import default
from jaxsel import augment, losses, metrics, models, optim, scores, steps, trackers
from jaxsel.data import iterators
from jaxsel.methods import prioritization
from jaxsel.state import create_train_state
from tests.conftest import override

NUM_EXAMPLES, LENGTH = 96, 40


@pytest.fixture(scope="module")
def data():
  rng = np.random.default_rng(0)
  return {"inputs": jnp.asarray(rng.normal(size=(NUM_EXAMPLES, LENGTH)), jnp.float32),
          "labels": jnp.asarray(rng.integers(0, 10, NUM_EXAMPLES), jnp.int32)}


def _state(use_batchnorm=False, lr=0.1, model=None, input_shape=(LENGTH,)):
  config = override(default.get_config(), **{"optimizer.learning_rate": lr})
  model = model or models.get_model("cnn1d", num_classes=10, channels=8,
                                    use_batchnorm=use_batchnorm)
  return create_train_state(model, optim.make_optimizer(config), seed=0,
                            input_shape=input_shape)


def _step_fn(lr=0.1, **kwargs):
  return steps.make_train_step(loss_fn=losses.cross_entropy,
                               learning_rate_fn=optax.constant_schedule(lr),
                               schedule_unit="epoch", **kwargs)


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
  chunk = steps.jit_train_chunk(_step_fn())
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
  step = jax.jit(steps.make_train_step(loss_fn=losses.cross_entropy,
                                       learning_rate_fn=schedule, schedule_unit="epoch"))
  batch = steps.gather_batch(data, jnp.arange(8, dtype=jnp.int32), jnp.ones(8, bool))
  state, _ = step(_state(), batch, 4)
  assert float(state.opt_state.hyperparams["learning_rate"]) == pytest.approx(0.5)


def test_no_recompilation_when_the_index_set_changes_size(data):
  # chex raises if the step is traced a second time, i.e. if the chunk recompiles.
  chunk = steps.jit_train_chunk(chex.assert_max_traces(_step_fn(), n=1))
  state = _state()
  for epoch, size in enumerate([96, 40, 7, 96, 1]):
    plan = iterators.train_plan(np.arange(size), batch_size=8, steps_per_chunk=3,
                                shuffle_seed=(0, epoch))
    for ids, mask in plan.chunks():
      state, _ = chunk(state, steps.empty_train_sums(), data, ids, mask, np.int32(epoch))
  assert int(state.step) == 12 + 5 + 1 + 12 + 1


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


def test_full_pass_scores_are_the_entropy_of_eval_logits(data):
  state = _state(use_batchnorm=True)
  # Train a few steps so the BatchNorm running averages differ from their initial values:
  # eval mode must use them, not the batch's statistics.
  step = jax.jit(_step_fn())
  for start in range(0, 64, 16):
    ids = jnp.arange(start, start + 16, dtype=jnp.int32)
    state, _ = step(state, steps.gather_batch(data, ids, jnp.ones(16, bool)), 0)
  subset = np.asarray([3, 10, 11, 40, 95, 50, 7], np.int32)
  plan = iterators.full_pass_plan(subset, batch_size=4, steps_per_chunk=1)
  score_pass = steps.jit_score_chunk(prioritization._entropy_table)  # pylint: disable=protected-access
  tables = {prioritization.SCORE_TABLE: jnp.full(NUM_EXAMPLES, -1.0)}
  for ids, mask in plan.chunks():
    tables = score_pass(state, tables, data, ids, mask)
  table = np.asarray(tables[prioritization.SCORE_TABLE])
  eval_logits = steps.predict(state, data["inputs"], jnp.ones(NUM_EXAMPLES, bool))
  np.testing.assert_allclose(table[subset], np.asarray(scores.entropy(eval_logits))[subset],
                             rtol=1e-5, atol=1e-6)
  assert np.all(np.delete(table, subset) == -1.0)  # padding rows (id 0) wrote nothing
  train_logits = state.apply_fn({"params": state.params, "batch_stats": state.batch_stats},
                                data["inputs"], train=True, mutable=["batch_stats"])[0]
  assert not np.allclose(table[subset], np.asarray(scores.entropy(train_logits))[subset],
                         atol=1e-4)


def _tracked_state():
  tracker = trackers.combine({"last_entropy": trackers.last_score(scores.entropy)})
  state = _state()
  return state.replace(trackers=tracker.init(NUM_EXAMPLES)), tracker


def test_train_step_scores_only_the_trained_examples_the_rest_stay_stale(data):
  state, tracker = _tracked_state()
  state = state.replace(trackers={"last_entropy": jnp.full(NUM_EXAMPLES, -1.0)})
  subset = np.array([3, 10, 11, 40, 95], np.int32)
  plan = iterators.train_plan(subset, batch_size=4, steps_per_chunk=2, shuffle_seed=(0, 0))
  chunk = steps.jit_train_chunk(_step_fn(tracker=tracker))
  for ids, mask in plan.chunks():
    state, _ = chunk(state, steps.empty_train_sums(), data, ids, mask, np.int32(0))
  table = np.asarray(state.trackers["last_entropy"])
  others = np.setdiff1d(np.arange(NUM_EXAMPLES), subset)
  assert np.all(table[others] == -1.0)  # padding rows (id 0) wrote nothing either
  assert np.all((table[subset] > 0) & (table[subset] <= 1))


def _mixup(alpha=1.0):
  return augment.get_mixing(override(default.get_config(),
                                     **{"mixing.name": "mixup", "mixing.alpha": alpha}).mixing)


def test_mixup_scores_the_mixed_or_the_unmixed_view(data):
  state, tracker = _tracked_state()
  batch = steps.gather_batch(data, jnp.arange(8, dtype=jnp.int32), jnp.ones(8, bool))
  run = lambda **kw: jax.jit(_step_fn(tracker=tracker, mixing_fn=_mixup(), **kw))(  # noqa: E731
      state, batch, 0)
  mixed, _ = run(clean_view=False)
  unmixed, _ = run(clean_view=True)
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


def test_step_outputs_name_the_sources_and_weights_of_mixed_rows(data):
  state = _state()
  ids = jnp.asarray([5, 9, 2, 0], jnp.int32)
  batch = steps.gather_batch(data, ids, jnp.asarray([True, True, True, False]))
  batch, mixed = steps.prepare_inputs(state, batch, jnp.int32(0), augment_fn=None,
                                      mixing_fn=_mixup(0.4))
  logits = jnp.zeros((4, 10))
  outputs = steps.step_outputs(state, batch, logits, jnp.zeros(4), mixed, 3)
  partner = np.asarray(mixed.positions[:, 1])
  np.testing.assert_array_equal(outputs.sources[:, 0], ids)
  np.testing.assert_array_equal(outputs.sources[:, 1], np.asarray(ids)[partner])
  assert partner[3] == 3  # the padding row is its own partner
  lam = float(mixed.weights[0, 0])
  np.testing.assert_allclose(outputs.weights, np.tile([lam, 1 - lam], (4, 1)), rtol=1e-6)
  assert int(outputs.epoch) == 3 and int(outputs.step) == 0
  # Without mixing: one source, the row itself, with weight 1.
  plain = steps.step_outputs(state, batch, logits, jnp.zeros(4), None, 0)
  np.testing.assert_array_equal(plain.sources, np.asarray(ids)[:, None])
  np.testing.assert_array_equal(plain.weights, np.ones((4, 1)))
  # The mixed loss is Σ_m w_m ℓ(logits, y_sources): with uniform logits, ℓ = log 10 each.
  loss = augment.mixed_loss(losses.cross_entropy, logits, batch["labels"], mixed.positions,
                            mixed.weights)
  np.testing.assert_allclose(loss, np.full(4, np.log(10.0)), rtol=1e-6)


def test_crop_flip_inside_the_train_step_is_the_documented_transform():
  images = jnp.asarray(np.random.default_rng(1).normal(size=(12, 6, 6, 1)), jnp.float32)
  image_data = {"inputs": images, "labels": jnp.arange(12, dtype=jnp.int32) % 10}
  model = models.get_model("mlp", num_classes=10, hidden_sizes=(16,))
  state = _state(model=model, input_shape=(6, 6, 1))
  black = np.asarray([-0.75], np.float32)
  config = override(default.get_config(), **{"augmentation.name": "crop_flip",
                                             "augmentation.crop_padding": 2})
  augment_fn = augment.get_augmentation(config.augmentation, input_shape=(6, 6, 1),
                                        normalized_black=black)
  ids = jnp.asarray([7, 2, 11, 4], jnp.int32)
  batch = steps.gather_batch(image_data, ids, jnp.ones(4, bool))
  epoch = 5
  augmented_state, _ = jax.jit(_step_fn(augment_fn=augment_fn))(state, batch, epoch)
  # The same update as an un-augmented step on crop_flip(fold_in(rngs['augmentation'],
  # epoch), inputs, ids): each example's crop depends on the epoch and its id only.
  key = jax.random.fold_in(state.rngs["augmentation"], epoch)
  expected_inputs = augment.crop_flip(key, batch["inputs"], ids, padding=2, pad_value=black)
  plain_state, _ = jax.jit(_step_fn())(state, dict(batch, inputs=expected_inputs), epoch)
  for x, y in zip(jax.tree.leaves(augmented_state.params),
                  jax.tree.leaves(plain_state.params)):
    np.testing.assert_array_equal(x, y)
  # The padding is the normalised black, and the inputs really were changed.
  assert not np.array_equal(expected_inputs, batch["inputs"])
  padded_pixels = np.isin(np.asarray(expected_inputs), black)
  assert padded_pixels.any()
  assert not np.isin(np.asarray(images), black).any()


def test_grad_norm_pass_is_the_norm_of_each_examples_own_gradient(data):
  state = _state(use_batchnorm=True)
  step = jax.jit(_step_fn())
  for start in range(0, 64, 16):  # move the BatchNorm averages off their initial values
    ids = jnp.arange(start, start + 16, dtype=jnp.int32)
    state, _ = step(state, steps.gather_batch(data, ids, jnp.ones(16, bool)), 0)
  subset = np.asarray([3, 10, 40, 95, 7], np.int32)
  plan = iterators.full_pass_plan(subset, batch_size=4, steps_per_chunk=1)
  grad_pass = steps.jit_grad_norm_chunk(losses.cross_entropy)
  table = jnp.full(NUM_EXAMPLES, -1.0)
  for ids, mask in plan.chunks():
    table = grad_pass(state, table, data, ids, mask)
  table = np.asarray(table)

  def loss_of(params, i):  # one example, eval mode, through the model itself
    logits = state.apply_fn({"params": params, "batch_stats": state.batch_stats},
                            data["inputs"][i:i + 1], train=False)
    return losses.cross_entropy(logits, data["labels"][i:i + 1])[0]

  for i in subset:
    grads = jax.grad(loss_of)(state.params, int(i))
    norm = np.sqrt(sum(float(jnp.sum(g ** 2)) for g in jax.tree.leaves(grads)))
    assert table[i] == pytest.approx(norm, rel=1e-4)
  assert np.all(np.delete(table, subset) == -1.0)
