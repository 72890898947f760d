"""Method registry and the epoch policy of calibrated prioritization, on a hand-made
score table: warm-up, k, selectors, the shared seeded tie-break, targets, epoch-end tables."""

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import default
from jaxsel import artifacts, methods, models, optim
from jaxsel.data import ArraySplit, Dataset, Normalization
from jaxsel.durations import TrainingPlan
from jaxsel.methods import prioritization
from jaxsel.state import create_train_state
from tests.conftest import override, with_method

NUM_POOL = 20
TRAIN_IDS = np.arange(16, dtype=np.int32)  # ids 16..19 are validation examples


def _dataset() -> Dataset:
  rng = np.random.default_rng(0)
  split = lambda n: ArraySplit(rng.normal(size=(n, 4)).astype(np.float32),  # noqa: E731
                               (np.arange(n) % 3).astype(np.int32))
  return Dataset(name="toy", num_classes=3, pool=split(NUM_POOL), train_ids=TRAIN_IDS,
                 validation_ids=np.arange(16, 20, dtype=np.int32), test=split(6),
                 normalization=Normalization((0.0,), (1.0,)))


def _config(**fields) -> ml_collections.ConfigDict:
  config = with_method(default.get_config(), "prioritization",
                       **{"method.subset_size": 4, "method.warmup_epochs": 2,
                          "train.num_epochs": 6})
  return override(config, **fields)


def _method(**fields):
  config = _config(**fields)
  methods.get_method("prioritization").check_config(config)
  return methods.get_method("prioritization")(config, _dataset())


def _state_with_table(table):
  model = models.get_model("mlp", num_classes=3, hidden_sizes=(4,))
  state = create_train_state(model, optim.make_optimizer(_config()), seed=0,
                             input_shape=(4,))
  return state.replace(trackers={prioritization.SCORE_TABLE: jnp.asarray(table, jnp.float32)})


# Entropies of the 20 pool ids; validation ids 16..19 have the highest, and must never be
# chosen. Among training ids the top 4 are 3, 7, 11, 0.
TABLE = np.asarray([0.8, 0.1, 0.2, 0.95, 0.3, 0.4, 0.5, 0.9, 0.05, 0.15, 0.25, 0.85,
                    0.35, 0.45, 0.55, 0.6, 1.0, 1.0, 1.0, 1.0])


def test_registry_names_and_errors():
  assert methods.get_method("full_data") is methods.FullData
  assert methods.get_method("prioritization") is methods.Prioritization
  assert methods.default_config("prioritization").name == "prioritization"
  with pytest.raises(ValueError, match="unknown config.method.name 'x'; valid: .*full_data"):
    methods.get_method("x")


def test_warm_up_epochs_train_on_everything_then_k():
  method = _method()
  assert [method.examples_in_epoch(e) for e in range(5)] == [16, 16, 4, 4, 4]
  state = _state_with_table(TABLE)
  choice = method.choose(1, state, data=None)
  np.testing.assert_array_equal(choice.example_ids, TRAIN_IDS)
  assert not choice.selected
  choice = method.choose(2, state, data=None)
  assert choice.selected
  np.testing.assert_array_equal(choice.example_ids, [0, 3, 7, 11])  # sorted ids
  assert choice.costs["selection_seconds"] >= 0 and choice.costs["examples_scored"] == 0


def test_a_full_subset_never_selects():
  method = _method(**{"method.subset_size": 0, "method.subset_fraction": 1.0})
  assert [method.examples_in_epoch(e) for e in range(6)] == [16] * 6
  assert not method.choose(4, _state_with_table(TABLE), data=None).selected


def test_uniform_takes_every_qth_rank_of_the_training_ids():
  # Training ids by descending entropy: 3, 7, 11, 0, 15, 14, 6, 13, 5, 12, 4, 10, 2, 9, 1,
  # 8; q = 16 // 4 = 4 -> ranks 0, 4, 8, 12 -> ids 3, 15, 5, 2.
  method = _method(**{"method.selector": "uniform"})
  ids = method.choose(3, _state_with_table(TABLE), data=None).example_ids
  np.testing.assert_array_equal(ids, [2, 3, 5, 15])


def test_random_subsets_change_each_epoch_and_repeat_for_a_seed():
  method = _method(**{"method.selector": "random"})
  state = _state_with_table(TABLE)
  subsets = [method.choose(e, state, data=None).example_ids for e in (2, 3, 4)]
  assert all(len(np.unique(s)) == 4 and np.all(s < 16) for s in subsets)
  assert len({tuple(s) for s in subsets}) > 1
  again = _method(**{"method.selector": "random"})
  np.testing.assert_array_equal(again.choose(3, state, data=None).example_ids, subsets[1])


def test_ties_follow_one_fixed_permutation_of_the_run_or_the_ids():
  tied = np.zeros(NUM_POOL)
  state = _state_with_table(tied)
  by_index = _method(**{"method.tie_break": "index"})
  np.testing.assert_array_equal(by_index.choose(2, state, data=None).example_ids,
                                [0, 1, 2, 3])
  # The seeded tie-break is one permutation for the whole run: the same four win every
  # epoch, and another seed picks others.
  seeded = _method()
  first = seeded.choose(2, state, data=None).example_ids
  np.testing.assert_array_equal(seeded.choose(5, state, data=None).example_ids, first)
  others = [_method(**{"seed": s}).choose(2, state, data=None).example_ids
            for s in range(1, 6)]
  assert any(not np.array_equal(o, first) for o in others)


def _score_file(tmp_path, dataset, trajectory, final):
  return artifacts.save(str(tmp_path), artifacts.ScoreFile(
      example_ids=dataset.train_ids,
      tables={"entropy_trajectory": np.asarray(trajectory, np.float32),
              "final_entropy": np.asarray(final, np.float32)},
      fingerprint=dataset.fingerprint, dataset_name=dataset.name, num_epochs=3, seeds=(0,),
      config={}))


@pytest.mark.parametrize("mode", ["trajectory", "fixed"])
def test_target_scores_replace_the_current_models(tmp_path, mode):
  dataset = _dataset()
  # Column 0 of the trajectory prefers ids 0..3 and column 2 (the last, used for every
  # epoch from 2 on: column min(epoch, E - 1)) ids 12..15; the final entropies ids 4..7.
  trajectory = np.zeros((16, 3))
  trajectory[0:4, 0] = 1.0
  trajectory[12:16, 2] = 1.0
  final = np.zeros(16)
  final[4:8] = 1.0
  path = _score_file(tmp_path, dataset, trajectory, final)
  config = _config(**{"method.target.path": path, "method.target.mode": mode})
  method = methods.Prioritization(config, dataset)
  state = _state_with_table(TABLE)  # ignored: the target ranks
  expected = [12, 13, 14, 15] if mode == "trajectory" else [4, 5, 6, 7]
  for epoch in (2, 5):
    np.testing.assert_array_equal(method.choose(epoch, state, data=None).example_ids,
                                  expected)


def test_target_missing_its_table_is_refused(tmp_path):
  dataset = _dataset()
  path = artifacts.save(str(tmp_path), artifacts.ScoreFile(
      example_ids=dataset.train_ids, tables={"final_entropy": np.zeros(16, np.float32)},
      fingerprint=dataset.fingerprint, dataset_name="toy", num_epochs=1, seeds=(0,),
      config={}))
  config = _config(**{"method.target.path": path})  # mode trajectory
  with pytest.raises(ValueError, match="config.method.target.path .* entropy_trajectory"):
    methods.Prioritization(config, dataset)


def test_end_epoch_snapshots_the_table_and_marks_the_selection():
  method = _method(**{"method.save_scores": True, "method.save_selection_matrix": True})
  plan = TrainingPlan((2, 2, 1, 1, 1, 1))
  state = _state_with_table(TABLE).replace(method_state=method.initial_method_state(plan))
  assert state.method_state[prioritization.TRAJECTORY].shape == (6, NUM_POOL)
  state = method.end_epoch(2, state, np.asarray([0, 3, 7, 11]))
  np.testing.assert_array_equal(state.method_state[prioritization.TRAJECTORY][2],
                                TABLE.astype(np.float32))
  np.testing.assert_array_equal(state.method_state[prioritization.TRAJECTORY][1], 0.0)
  row = np.asarray(state.method_state[prioritization.SELECTION_MATRIX][2])
  np.testing.assert_array_equal(np.flatnonzero(row), [0, 3, 7, 11])
  assert not np.asarray(state.method_state[prioritization.SELECTION_MATRIX][1]).any()


def test_subset_size_beyond_the_training_set_is_refused_naming_the_field():
  with pytest.raises(ValueError, match="config.method.subset_size must be at most the "
                                       "number of training examples \\(16\\)"):
    _method(**{"method.subset_size": 17})
