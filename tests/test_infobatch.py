"""InfoBatch (jaxsel/methods/infobatch.py): pruning and weights by hand, the unbiasedness of
the re-weighted epoch gradient, the schedule of shrinking epochs, resume and compilation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from jaxsel import compilation, losses, methods, models, optim, steps, train
from jaxsel.config_errors import UserError
from jaxsel.durations import TrainingPlan
from jaxsel.methods import infobatch
from jaxsel.state import create_train_state
from tests.conftest import override, with_method
from tests.test_methods import _dataset
from tests.test_train import _records, assert_killed_run_resumes_to


def test_prune_keeps_the_above_mean_and_unseen_and_a_drawn_part_of_the_rest():
  # Seen scores 0.1 0.5 0.2 0.9 0.3: mean 0.4, so W = {0, 2, 5}; κ = 0.5 keeps ⌊1.5⌋ = 1.
  scores = np.asarray([0.1, 0.5, 0.2, 0.9, np.nan, 0.3], np.float32)
  kept, weights = infobatch.prune(scores, keep=0.5, rng=np.random.default_rng(7))
  drawn = np.random.default_rng(7).choice([0, 2, 5], 1, replace=False)
  expected = np.asarray([False, True, False, True, True, False])
  expected[drawn] = True
  np.testing.assert_array_equal(kept, expected)
  expected_weights = np.ones(6, np.float32)
  expected_weights[drawn] = 2.0
  np.testing.assert_array_equal(weights, expected_weights)


def test_prune_is_strictly_below_the_mean_and_keeps_all_when_nothing_is_seen():
  # Mean 2: only the 1 is below it, and ⌊0.5 · 1⌋ = 0 of it are kept.
  kept, weights = infobatch.prune(np.asarray([1.0, 2.0, 3.0], np.float32), keep=0.5,
                                  rng=np.random.default_rng(0))
  np.testing.assert_array_equal(kept, [False, True, True])
  np.testing.assert_array_equal(weights, [1.0, 1.0, 1.0])
  # All equal (the first epoch): nothing is below the mean.
  kept, _ = infobatch.prune(np.full(4, 3.0, np.float32), keep=0.5,
                            rng=np.random.default_rng(0))
  assert kept.all()
  kept, _ = infobatch.prune(np.full(4, np.nan, np.float32), keep=0.5,
                            rng=np.random.default_rng(0))
  assert kept.all()


def test_keep_ratio_and_the_annealing_epochs():
  assert infobatch.keep_ratio(0.5) == 0.5
  assert infobatch.keep_ratio(0.0) == 1.0
  assert infobatch.keep_ratio(0.9) == pytest.approx(0.1)
  # E = 8, δ = 0.875: the reference's iterations 1..7 prune, so epochs 0..6; 7 anneals.
  assert [infobatch.is_pruning_epoch(e, num_epochs=8, anneal_fraction=0.125)
          for e in range(8)] == [True] * 7 + [False]
  # E = 10: E·δ = 8.75, so epochs 0..7 prune and 8, 9 anneal.
  assert [infobatch.is_pruning_epoch(e, num_epochs=10, anneal_fraction=0.125)
          for e in range(10)] == [True] * 8 + [False] * 2


def _per_example_gradients(num: int = 64):
  """Per-example gradients [N, P] and losses [N] of a fixed random linear softmax model."""
  rng = np.random.default_rng(0)
  inputs = jnp.asarray(rng.normal(size=(num, 5)), jnp.float32)
  labels = jnp.asarray(rng.integers(0, 3, num), jnp.int32)
  weights = jnp.asarray(rng.normal(size=(5, 3)), jnp.float32)

  def loss(w, x, y):
    return losses.cross_entropy((x @ w)[None], y[None])[0]

  grads = jax.vmap(jax.grad(loss), in_axes=(None, 0, 0))(weights, inputs, labels)
  per_example = jax.vmap(loss, in_axes=(None, 0, 0))(weights, inputs, labels)
  return np.asarray(grads.reshape(num, -1), np.float64), np.asarray(per_example)


def test_the_reweighted_epoch_gradient_is_unbiased_and_the_unweighted_one_is_not():
  """The paper's claim (G.4): E[Σ_kept w_i g_i] = Σ_i g_i. Over 4,000 pruning draws on a
  fixed model the mean of the re-weighted sum is within 4 standard errors of the full
  gradient in every coordinate; the un-weighted pruned sum is far outside."""
  grads, scores = _per_example_gradients()
  full = grads.sum(axis=0)
  rng = np.random.default_rng(1)
  weighted, unweighted = [], []
  for _ in range(4000):
    kept, weights = infobatch.prune(scores, keep=0.5, rng=rng)
    weighted.append((grads * (kept * weights)[:, None]).sum(axis=0))
    unweighted.append((grads * kept[:, None]).sum(axis=0))
  weighted, unweighted = np.asarray(weighted), np.asarray(unweighted)
  error = weighted.std(axis=0) / np.sqrt(len(weighted))
  assert np.all(np.abs(weighted.mean(axis=0) - full) <= 4 * error + 1e-9)
  bias = np.abs(unweighted.mean(axis=0) - full)
  assert np.max(bias / (unweighted.std(axis=0) / np.sqrt(len(unweighted)) + 1e-12)) > 20


def test_the_loss_weights_of_the_standard_step_scale_each_examples_loss():
  """A weighted step (the generic ``loss_weights`` input) equals SGD on Σ w_i ℓ_i / n over
  the real rows; weights of one give the unweighted step exactly."""
  model = models.get_model("mlp", num_classes=3, hidden_sizes=(4,))
  config = override(with_method(_config(), "infobatch"),
                    **{"optimizer.momentum": 0.0, "optimizer.weight_decay": 0.0})
  state = create_train_state(model, optim.make_optimizer(config), seed=0, input_shape=(4,))
  rng = np.random.default_rng(3)
  batch = {"inputs": jnp.asarray(rng.normal(size=(4, 4)), jnp.float32),
           "labels": jnp.asarray([0, 1, 2, 0], jnp.int32),
           "example_ids": jnp.arange(4, dtype=jnp.int32),
           "mask": jnp.asarray([True, True, True, False])}
  weights = jnp.asarray([2.0, 0.0, 1.0, 5.0])  # the padding row's weight must not count
  grads, _ = steps.loss_and_grads(state, batch, None, loss_fn=losses.cross_entropy,
                                  loss_weights=weights)

  def by_hand(params):
    logits = model.apply({"params": params}, batch["inputs"], train=True,
                         mask=batch["mask"])
    return (2.0 * losses.cross_entropy(logits, batch["labels"])[0]
            + losses.cross_entropy(logits, batch["labels"])[2]) / 3.0

  expected = jax.grad(by_hand)(state.params)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
               grads, expected)
  ones, _ = steps.loss_and_grads(state, batch, None, loss_fn=losses.cross_entropy,
                                 loss_weights=jnp.ones(4))
  plain, _ = steps.loss_and_grads(state, batch, None, loss_fn=losses.cross_entropy)
  jax.tree.map(np.testing.assert_array_equal, ones, plain)


def _config(**fields):
  return override(with_method(default.get_config(), "infobatch"),
                  **{"train.num_epochs": 10, **fields})


def _method(**fields):
  config = _config(**fields)
  methods.get_method("infobatch").check_config(config)
  method = methods.get_method("infobatch")(config, _dataset())
  method.plan = TrainingPlan((4,) * config.train.num_epochs)
  return method


def _state(method, scores):
  model = models.get_model("mlp", num_classes=3, hidden_sizes=(4,))
  state = create_train_state(model, optim.make_optimizer(method.config), seed=0,
                             input_shape=(4,),
                             method_state=method.initial_method_state(method.plan))
  return state.replace(trackers={infobatch.SCORE_TABLE: jnp.asarray(scores, jnp.float32)})


@pytest.mark.parametrize("reference", [False, True])
def test_annealing_epochs_train_on_everything_with_the_weights_reset(reference):
  """E = 10 (E·δ = 8.75): epoch 7 prunes and up-weights; epochs 8 and 9 train on all 16
  training ids; their weights are reset, unless the reference's reset (which 8.75 never
  triggers) is asked for."""
  method = _method(**{"method.reference_weight_reset": reference})
  scores = np.linspace(0.0, 1.0, 20)  # training ids 0..15 score lowest: 0..7 below the mean
  choice = method.choose(7, _state(method, scores), None)
  assert len(choice.example_ids) == 16 - 8 + 4 and choice.selected
  weights = np.asarray(choice.state.method_state["loss_weights"])
  assert sorted(np.unique(weights[:16])) == [1.0, 2.0] and (weights[:16] == 2.0).sum() == 4
  annealed = method.choose(8, choice.state, None)
  np.testing.assert_array_equal(annealed.example_ids, np.arange(16))
  assert not annealed.selected
  after = np.asarray(annealed.state.method_state["loss_weights"])
  np.testing.assert_array_equal(after, weights if reference else np.ones(20))
  assert int(annealed.state.method_state["pruned"]) == 4


def test_bad_settings_are_refused_naming_the_field():
  infobatch_cls = methods.get_method("infobatch")
  with pytest.raises(UserError, match="method.prune_ratio"):
    infobatch_cls.check_config(_config(**{"method.prune_ratio": 0.95}))
  with pytest.raises(UserError, match="method.anneal_fraction"):
    infobatch_cls.check_config(_config(**{"method.anneal_fraction": 1.5}))
  with pytest.raises(UserError, match="num_train_steps"):
    infobatch_cls.check_config(_config(**{"train.num_epochs": 0,
                                          "train.num_train_steps": 100}))


def _run_config(tiny_config, **fields):
  return with_method(tiny_config, "infobatch", **{
      "train.num_epochs": 4, "method.anneal_fraction": 0.25, "schedule.unit": "step",
      "checkpoint.every_epochs": 1, **fields})


def test_a_run_prunes_counts_exactly_follows_the_schedule_and_compiles_once(tiny_config,
                                                                            tmp_path):
  config = _run_config(tiny_config)
  compilations = {}

  def count(epoch, record):
    del record
    compilations[epoch] = compilation.CompileClock.compilations()

  workdir = str(tmp_path / "run")
  summary = train.train_and_evaluate(config, workdir, on_epoch_end=count)
  records = _records(workdir)
  num_train = summary["num_train"]
  sizes = [r["num_selected"] for r in records]
  # Epoch 0 sees every example (nothing seen yet), 1 and 2 prune, 3 anneals.
  assert sizes[0] == sizes[3] == num_train and all(s < num_train for s in sizes[1:3])
  assert [r["selection_epoch"] for r in records] == [False, True, True, False]
  assert summary["examples_backpropagated"] == sum(sizes)
  assert summary["infobatch_saved_examples"] == 4 * num_train - sum(sizes)
  assert summary["infobatch_saving_percent"] == pytest.approx(
      100 * (4 * num_train - sum(sizes)) / (4 * num_train))
  assert summary["num_train_steps"] == sum(r["num_steps"] for r in records)
  # Epochs of other sizes compile nothing new.
  assert compilations[3] == compilations[2] == compilations[1]
  # Every epoch sweeps the planned epoch's part of the per-step schedule (G.5): its last
  # step is at the planned start + (n − 1) · planned / n.
  planned = -(-num_train // config.train.batch_size)
  schedule = optim.make_schedule(config, epoch_steps=[planned] * 4)
  for epoch, record in enumerate(records):
    n = record["num_steps"]
    position = np.float32(epoch * planned) + np.float32(n - 1) * np.float32(planned / n)
    assert record["lr"] == pytest.approx(float(schedule(position)), rel=1e-5, abs=1e-9)


def test_a_killed_run_resumes_to_the_uninterrupted_numbers(tiny_config, tmp_path):
  """Scores, weights, the pruned count and the schedule's position are in the checkpoint,
  and the draws come from (seed, epoch)."""
  config = _run_config(tiny_config, **{"mixing.name": "mixup"})
  train.train_and_evaluate(config, str(tmp_path / "reference"))
  assert_killed_run_resumes_to(config, str(tmp_path / "reference"), str(tmp_path / "killed"))
