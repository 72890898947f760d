"""The search for the length at which augmentation pays off, on fake runs (no training)."""

from configs.papers import budgeted_importance_sampling as paper
from experiments import budgeted_length as length

SEEDS = length.SEEDS


def _fake(table):
  """run(epochs, augmentation, seed) from {epochs: {augmentation: three accuracies}}; records
  every call."""
  calls = []

  def run(epochs, augmentation, seed):
    calls.append((epochs, augmentation, seed))
    if epochs not in table:
      return None
    return {"test_accuracy": table[epochs][augmentation][SEEDS.index(seed)]}
  return run, calls


def test_stops_at_the_first_length_where_an_augmentation_beats_standard():
  table = {
      # RICAP − standard per seed +1, −1, +0.5: spans 0. RandAugment −0.5 each: worse.
      15: {"standard": [80.0, 81.0, 80.5], "ricap": [81.0, 80.0, 81.0],
           "randaugment": [79.5, 80.5, 80.0]},
      # RandAugment − standard +0.4, +0.6, +0.5: mean 0.5, sd 0.1, half-width
      # 4.303 · 0.1 / √3 = 0.248, so [+0.25, +0.75] lies above 0.
      30: {"standard": [82.0, 82.5, 83.0], "ricap": [81.0, 82.0, 83.5],
           "randaugment": [82.4, 83.1, 83.5]}}
  run, calls = _fake(table)
  found, chosen = length.search(run)
  assert chosen == 30 and list(found) == [15, 30]
  assert {epochs for epochs, _, _ in calls} == {15, 30}  # 60 and 100 never ran
  gains = length.gains(found[30])
  assert (round(gains["randaugment"].low, 2), round(gains["randaugment"].high, 2)) == \
      (0.25, 0.75)
  text = length.markdown(found, chosen, minutes=3.0)
  assert "**Chosen length: 30 epochs**, the first at which RandAugment beat" in text
  # RICAP − standard at 30: −1, −0.5, +0.5, mean −0.33.
  assert "| 30 | 82.50 | -0.33 [" in text and "+0.50 [+0.25, +0.75] |" in text
  rows = length.rows(found)
  assert len(rows) == 6 and rows[-1]["gain_vs_standard"] == 0.5


def test_no_length_pays_off_is_said():
  same = {"standard": [80.0, 81.0, 82.0], "ricap": [80.0, 81.0, 82.0],
          "randaugment": [79.0, 80.0, 81.0]}
  run, _ = _fake({e: same for e in length.LENGTHS})
  found, chosen = length.search(run)
  assert chosen is None and list(found) == list(length.LENGTHS)
  assert f"**No length up to {length.LENGTHS[-1]} epochs**" in length.markdown(found, None, 1.0)


def test_report_only_stops_where_the_runs_stop():
  run, calls = _fake({15: {"standard": [80.0] * 3, "ricap": [80.0] * 3,
                           "randaugment": [80.0] * 3}})
  found, chosen = length.search(run)
  assert (list(found), chosen) == ([15], None) and max(e for e, _, _ in calls) == 30
  assert "has not finished" in length.markdown(found, chosen, 1.0)


def test_the_runs_train_the_small_fashion_set_with_each_augmentation():
  config = paper.get_config(length.arg("randaugment"))
  assert config.dataset.train_subset_size == paper.SMALL_TRAIN_SIZE == 12_000
  assert config.augmentation.randaugment_num_ops == 2 and config.mixing.name == "none"
  assert paper.get_config(length.arg("ricap")).mixing.name == "ricap"
  assert config.model.name == "mnist_cnn" and config.train.batch_size == 128


def test_the_search_runs_are_the_augmentation_grids_own():
  from experiments import budgeted_importance_sampling as budgeted  # its flags are lazy
  for epochs in (30, 60):
    run_plan = budgeted.plan(length.DATASET, "runs/b", epochs=epochs,
                             seeds=paper.SEED_POOL[:5])
    cells = budgeted.planned_runs(run_plan, only_augmentation=True)
    labels = [label for label, _, _ in cells]
    assert len(cells) == 1 + 4 * 4 + 3  # standard; 4 methods x 4 augmentations; 3 at 100 %
    for augmentation in ("standard", *length.AUGMENTED):
      assert length.arg(augmentation) in labels
      assert length.run_dir("runs/b", epochs, augmentation, SEEDS[0]) == \
          budgeted.grid.run_dir(run_plan.root, length.arg(augmentation), SEEDS[0])
    # The same configs as the search's runs, or the grid would refuse their workdirs.
    overrides = {label: fields for label, _, fields in cells}
    for augmentation in ("standard", *length.AUGMENTED):
      arg = length.arg(augmentation)
      assert budgeted.grid.config_of(paper.get_config, arg, 1, overrides[arg]) == \
          budgeted.grid.config_of(paper.get_config, arg, 1, {"train.num_epochs": epochs})
    sparse = budgeted.grid.config_of(paper.get_config, f"{length.DATASET},unif,ricap,0.3", 1,
                                     overrides[f"{length.DATASET},unif,ricap,0.3"])
    assert sparse.eval.every_epochs == budgeted.AUGMENTATION_EVAL_EVERY == 5
    assert sparse.train.num_epochs == epochs
