"""Training dynamics on scripted presentations with hand-computed counts, margins and losses."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsel import dynamics
from jaxsel.trackers import StepOutputs

# Two classes; the label of every example is 0. A row's logits (a, 0) give p_0 =
# sigmoid(a): correct iff a > 0, probability margin 2·sigmoid(a) − 1, logit margin a,
# EL2N ‖(p_0 − 1, 1 − p_0)‖ = √2 (1 − p_0).
RIGHT, WRONG = 2.0, -1.0


def _sigmoid(a):
  return 1 / (1 + np.exp(-a))


# Per epoch: (example id, logit a, loss) of each presentation.
# - example 0: right, right, wrong, right  -> 1 forgetting event; losses 1, .5, 2, .2
# - example 1: wrong every time            -> never learned
# - example 2: wrong, right, wrong, right  -> 1 event (right -> wrong at epoch 2)
# - example 3: presented only in epochs 1 and 3, right both times, constant loss 0.3
EPOCHS = [
    [(0, RIGHT, 1.0), (1, WRONG, 2.0), (2, WRONG, 1.5)],
    [(0, RIGHT, 0.5), (1, WRONG, 2.5), (2, RIGHT, 0.9), (3, RIGHT, 0.3)],
    [(0, WRONG, 2.0), (1, WRONG, 2.2), (2, WRONG, 1.1)],
    [(0, RIGHT, 0.2), (1, WRONG, 2.4), (2, RIGHT, 0.4), (3, RIGHT, 0.3)],
]
NUM_IDS = 5  # example 4 is never presented


def _outputs(rows, epoch):
  # A padding row (id 0, mask False) rides along in every batch and must change nothing.
  rows = list(rows) + [(0, 100.0, 50.0)]
  ids = jnp.asarray([r[0] for r in rows], jnp.int32)
  logits = jnp.asarray([[r[1], 0.0] for r in rows], jnp.float32)
  mask = jnp.asarray([True] * (len(rows) - 1) + [False])
  return StepOutputs.of(ids, jnp.zeros(len(rows), jnp.int32), logits, mask=mask,
                        loss=jnp.asarray([r[2] for r in rows], jnp.float32), epoch=epoch)


def _run(**kwargs):
  tracker = dynamics.tracker(**kwargs)
  update = jax.jit(tracker.update)
  tables = tracker.init(NUM_IDS)
  for epoch, rows in enumerate(EPOCHS):
    tables = update(tables, _outputs(rows, epoch))
  return jax.device_get(tables)


def test_counts_forgetting_and_never_learned():
  tables = _run()
  raw = dynamics.unpack(tables)
  np.testing.assert_array_equal(raw["presentations"], [4, 4, 4, 2, 0])
  np.testing.assert_array_equal(raw["correct"], [3, 0, 2, 2, 0])
  np.testing.assert_array_equal(raw["forgetting_events"], [1, 0, 1, 0, 0])
  zero = dynamics.scores(tables)
  np.testing.assert_array_equal(zero["forgetting"], [1, 0, 1, 0, 0])
  np.testing.assert_array_equal(zero["never_learned"], [False, True, False, False, True])
  # Toneva et al.: a never-learned example counts as forgotten at every presentation.
  toneva = dynamics.scores(tables, never_learned_value="presentations")
  np.testing.assert_array_equal(toneva["forgetting"], [1, 4, 1, 0, 0])
  with pytest.raises(ValueError, match="unknown never_learned_value 'T'"):
    dynamics.scores(tables, never_learned_value="T")


def test_margins_and_el2n_by_hand():
  tables = _run(el2n_epochs=2)
  logits = {i: [a for rows in EPOCHS for j, a, _ in rows if j == i] for i in range(4)}
  prob_margin = [sum(2 * _sigmoid(a) - 1 for a in logits[i]) for i in range(4)] + [0.0]
  logit_mean = [np.mean(logits[i]) for i in range(4)] + [0.0]
  # EL2N over epochs 0 and 1 only.
  el2n = [sum(np.sqrt(2) * (1 - _sigmoid(a)) for j, a, _ in EPOCHS[0] + EPOCHS[1] if j == i)
          for i in range(5)]
  out = dynamics.scores(tables)
  np.testing.assert_allclose(out["accumulated_margin"], prob_margin, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(out["aum"], logit_mean, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(out["el2n"], el2n, rtol=1e-5, atol=1e-6)
  # Example 0 by hand: margins 2σ(2) − 1 = 0.7615942 three times, 2σ(−1) − 1 = −0.4621172.
  assert out["accumulated_margin"][0] == pytest.approx(3 * 0.7615942 - 0.4621172, rel=1e-5)


def test_loss_history_gives_max_loss_increase():
  out = dynamics.scores(_run())
  # 0: 1 -> .5 -> 2 -> .2: max increase 1.5; 1: 2 -> 2.5 -> 2.2 -> 2.4: 0.5;
  # 2: 1.5 -> .9 -> 1.1 -> .4: 0.2; 3: .3 -> .3: 0 (constant); 4: never presented: 0.
  np.testing.assert_allclose(out["max_loss_increase"], [1.5, 0.5, 0.2, 0.0, 0.0], atol=1e-6)
  np.testing.assert_allclose(out["last_loss"], [0.2, 2.4, 0.4, 0.3, 0.0], atol=1e-7)


def test_a_single_presentation_has_no_loss_increase():
  tracker = dynamics.tracker()
  tables = tracker.update(tracker.init(2), _outputs([(1, RIGHT, 0.7)], 0))
  out = dynamics.scores(jax.device_get(tables))
  np.testing.assert_array_equal(out["max_loss_increase"], [0.0, 0.0])
  assert np.isneginf(dynamics.unpack(tables)["max_loss_increase"]).all()  # raw: undefined yet


def test_per_epoch_trajectories_when_asked():
  tables = _run(per_epoch=3)  # 4 epochs were run: the 4th is not kept
  out = dynamics.scores(tables, ids=np.asarray([0, 3]))
  np.testing.assert_array_equal(out["correct_by_epoch"], [[1, 1, 0], [0, 1, 0]])
  np.testing.assert_allclose(out["loss_by_epoch"], [[1.0, 0.5, 2.0], [0.0, 0.3, 0.0]])
  assert "correct_by_epoch" not in dynamics.scores(_run())


def test_first_learned_and_presentations_needed_to_learn():
  out = dynamics.scores(_run())
  # 0: right first (1), last wrong at 3; 1: never right (0), last wrong at 4;
  # 2: right first at 2, last wrong at 3; 3: right at both (1), never wrong (0); 4: unseen.
  np.testing.assert_array_equal(out["first_learned"], [1, 0, 2, 1, 0])
  np.testing.assert_array_equal(out["presentations_needed_to_learn"], [3, 4, 3, 0, 0])


def test_relative_loss_increase_by_hand():
  out = dynamics.scores(_run(relative_delta=0.5))
  # 0: (2 − .5)/(.5 + .5) = 1.5; 1: (2.5 − 2)/2.5 = .2 beats (2.4 − 2.2)/2.7;
  # 2: (1.1 − .9)/1.4; 3: constant: 0; 4: unseen: 0.
  np.testing.assert_allclose(out["max_relative_loss_increase"],
                             [1.5, 0.2, 0.2 / 1.4, 0.0, 0.0], rtol=1e-5, atol=1e-6)


def test_loss_slope_agrees_with_least_squares():
  out = dynamics.scores(_run())
  losses = {i: [loss for rows in EPOCHS for j, _, loss in rows if j == i] for i in range(4)}
  expected = [np.polyfit(np.arange(1, len(losses[i]) + 1), losses[i], 1)[0]
              for i in range(4)] + [0.0]
  # 3: constant loss: slope 0; 4: never presented: 0.
  np.testing.assert_allclose(out["loss_slope"], expected, rtol=1e-5, atol=1e-6)
  assert expected[3] == pytest.approx(0.0, abs=1e-12)


def test_loss_slope_is_stable_over_many_presentations():
  # 500 presentations of a slowly falling loss around 2.0: the raw-sum formula
  # (nΣtℓ − ΣtΣℓ) loses most digits in float32; the running co-moment keeps them.
  n = 500
  t = np.arange(1, n + 1)
  rng = np.random.default_rng(0)
  losses = (2.0 - 1e-4 * t + 0.01 * rng.standard_normal(n)).astype(np.float32)
  tracker = dynamics.tracker()
  update = jax.jit(tracker.update)
  tables = tracker.init(1)
  for epoch, loss in enumerate(losses):
    outputs = StepOutputs.of(jnp.zeros(1, jnp.int32), jnp.zeros(1, jnp.int32),
                             jnp.asarray([[RIGHT, 0.0]]), loss=jnp.asarray([loss]),
                             epoch=epoch)
    tables = update(tables, outputs)
  slope = dynamics.scores(jax.device_get(tables))["loss_slope"][0]
  expected = np.polyfit(t, losses.astype(np.float64), 1)[0]
  assert slope == pytest.approx(expected, rel=1e-3)
