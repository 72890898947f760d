"""Orderings for removal: hand-made score files with hand-computed aggregates and ranks, a
real training-dynamics run whose slopes and gradient norms are checked against their
definitions, and bad input refused naming the flag."""

import os

import numpy as np
import pytest

from jaxsel import artifacts, orderings, train
from jaxsel.config_errors import UserError
from tests.conftest import with_method
from tests.test_artifacts import MALFORMED
from tests.test_bad_inputs import assert_cli_refused, run_cli

IDS = np.asarray([2, 5, 7, 9], np.int32)


def _run_file(tmp_path, seed, **tables):
  defaults = {"forgetting": np.zeros(4, np.int32), "never_learned": np.zeros(4, bool),
              "presentations": np.full(4, 10, np.int32)}
  tables = {**defaults, **tables}
  return artifacts.save(str(tmp_path / f"seed{seed}.npz"), artifacts.ScoreFile(
      example_ids=IDS, tables=tables, fingerprint="abc", dataset_name="toy", num_epochs=10,
      seeds=(seed,), config={}))


def test_forgetting_sums_runs_and_counts_never_learned_as_presentations(tmp_path):
  paths = [
      _run_file(tmp_path, 0, forgetting=np.asarray([0, 3, 1, 0], np.int32),
                never_learned=np.asarray([False, False, False, True])),
      _run_file(tmp_path, 1, forgetting=np.asarray([0, 1, 0, 0], np.int32)),
  ]
  ordering = orderings.build(paths, orderings.OrderingSpec(tie_break="index"))
  # id 9 was never learned in seed 0: 10 presentations + 0 = 10.
  np.testing.assert_array_equal(ordering.table("score"), [0, 4, 1, 10])
  np.testing.assert_array_equal(ordering.table("rank"), [0, 2, 1, 3])
  np.testing.assert_array_equal(orderings.ordered_ids(ordering), [2, 7, 5, 9])
  assert ordering.seeds == (0, 1)
  assert ordering.extra["ordering"] == {"key": "forgetting", "aggregation": "sum",
                                        "tie_break": "index", "tie_break_seed": 0}
  assert ordering.extra["zero_score_fraction"] == 0.25


def test_ties_follow_one_seeded_permutation(tmp_path):
  paths = [_run_file(tmp_path, 0)]  # every score 0: the order is the tie-break alone
  by_index = orderings.build(paths, orderings.OrderingSpec(tie_break="index"))
  np.testing.assert_array_equal(orderings.ordered_ids(by_index), IDS)
  ranks = {seed: orderings.build(paths, orderings.OrderingSpec(seed=seed)).table("rank")
           for seed in range(6)}
  np.testing.assert_array_equal(ranks[0], orderings.build(
      paths, orderings.OrderingSpec(seed=0)).table("rank"))  # reproducible
  assert len({tuple(r) for r in ranks.values()}) > 1  # and seeded
  for rank in ranks.values():
    np.testing.assert_array_equal(np.sort(rank), np.arange(4))


def test_max_loss_increase_options_and_aggregations(tmp_path):
  paths = [
      _run_file(tmp_path, 0, max_loss_increase=np.asarray([-0.5, 0.2, 1.0, 0.0], np.float32),
                max_relative_loss_increase=np.asarray([-0.1, 2.0, 0.5, 0.0], np.float32)),
      _run_file(tmp_path, 1, max_loss_increase=np.asarray([-0.3, 0.4, -0.2, 0.1], np.float32),
                max_relative_loss_increase=np.asarray([0.0, 1.0, 3.0, 0.0], np.float32)),
  ]

  def score(**spec):
    return orderings.build(paths, orderings.OrderingSpec(key="max_loss_increase", **spec)
                           ).table("score")

  np.testing.assert_allclose(score(), [-0.8, 0.6, 0.8, 0.1], atol=1e-6)
  np.testing.assert_allclose(score(clip_at_zero=True), [0.0, 0.6, 1.0, 0.1], atol=1e-6)
  np.testing.assert_allclose(score(aggregation="mean"), [-0.4, 0.3, 0.4, 0.05], atol=1e-6)
  np.testing.assert_allclose(score(aggregation="max"), [-0.3, 0.4, 1.0, 0.1], atol=1e-6)
  np.testing.assert_allclose(score(relative=True), [-0.1, 3.0, 3.5, 0.0], atol=1e-6)
  spec = orderings.OrderingSpec(key="max_loss_increase", relative=True, clip_at_zero=True)
  assert spec.describe()["relative"] and spec.describe()["clip_at_zero"]


def test_gradient_loss_forms_and_their_default_aggregation(tmp_path):
  paths = [_run_file(tmp_path, s, loss_slope=np.asarray([-0.2, 0.1, 0.0, -0.1], np.float32),
                     grad_norm=np.asarray([1.0, 3.0, 2.0, 0.5], np.float32) * (s + 1))
           for s in range(2)]
  slope = orderings.build(paths, orderings.OrderingSpec(key="gradient_loss"))
  np.testing.assert_allclose(slope.table("score"), [-0.4, 0.2, 0.0, -0.2], atol=1e-6)
  np.testing.assert_array_equal(orderings.ordered_ids(slope), [2, 9, 7, 5])
  assert slope.extra["ordering"]["gradient_loss_form"] == "trajectory_slope"
  norm = orderings.build(paths, orderings.OrderingSpec(key="gradient_loss",
                                                       gradient_loss_form="grad_norm"))
  np.testing.assert_allclose(norm.table("score"), [1.5, 4.5, 3.0, 0.75])  # mean of ×1, ×2
  assert norm.extra["ordering"]["aggregation"] == "mean"


def test_slope_descending_and_by_magnitude(tmp_path):
  # Per-run slopes of ids 2, 5, 7, 9: seed 0 (−0.2, 0.1, 0.0, −0.1), seed 1 (0.3, 0.1, 0.0,
  # −0.1). Summed: 0.1, 0.2, 0.0, −0.2; summed magnitudes: 0.5, 0.2, 0.0, 0.2 (a tie).
  paths = [_run_file(tmp_path, 0, loss_slope=np.asarray([-0.2, 0.1, 0.0, -0.1], np.float32)),
           _run_file(tmp_path, 1, loss_slope=np.asarray([0.3, 0.1, 0.0, -0.1], np.float32))]
  ascending = orderings.build(paths, orderings.OrderingSpec(key="gradient_loss"))
  np.testing.assert_array_equal(orderings.ordered_ids(ascending), [9, 7, 2, 5])
  descending = orderings.build(paths, orderings.OrderingSpec(key="gradient_loss",
                                                             descending=True))
  np.testing.assert_array_equal(orderings.ordered_ids(descending), [5, 2, 7, 9])
  assert descending.extra["ordering"]["descending"] is True
  np.testing.assert_allclose(descending.table("score"), [0.1, 0.2, 0.0, -0.2], atol=1e-6)
  magnitude = orderings.build(paths, orderings.OrderingSpec(key="gradient_loss",
                                                            absolute=True, tie_break="index"))
  np.testing.assert_allclose(magnitude.table("score"), [0.5, 0.2, 0.0, 0.2], atol=1e-6)
  np.testing.assert_array_equal(orderings.ordered_ids(magnitude), [7, 5, 9, 2])  # tie by id
  assert "descending" not in magnitude.extra["ordering"]
  assert "absolute" not in ascending.extra["ordering"]  # older files describe themselves alike
  # Descending keeps the seeded tie order among equal scores: reversing the scores' order,
  # not the whole ranking.
  ties = orderings.build(paths[:1], orderings.OrderingSpec(
      key="gradient_loss", absolute=True, descending=True, tie_break="index"))
  np.testing.assert_array_equal(orderings.ordered_ids(ties), [2, 5, 9, 7])


def test_bad_input_names_the_flag(tmp_path):
  path = _run_file(tmp_path, 0)
  with pytest.raises(UserError, match="unknown --gradient_loss_form 'slope'"):
    orderings.build([path], orderings.OrderingSpec(key="gradient_loss",
                                                   gradient_loss_form="slope"))
  with pytest.raises(UserError, match="unknown --key 'loss'"):
    orderings.build([path], orderings.OrderingSpec(key="loss"))
  with pytest.raises(UserError, match="unknown --aggregation 'median'"):
    orderings.build([path], orderings.OrderingSpec(aggregation="median"))
  with pytest.raises(UserError, match=r"--seed must be an integer >= 0, got -1"):
    orderings.build([path], orderings.OrderingSpec(seed=-1))
  with pytest.raises(UserError, match=r"--scores must be at least one score file, got \[\]"):
    orderings.build([], orderings.OrderingSpec())


def _one_line_error(call) -> str:
  with pytest.raises(UserError) as info:
    call()
  message = str(info.value)
  assert "\n" not in message, message
  return message


def test_tables_the_key_needs_are_named_with_its_flags(tmp_path):
  path = _run_file(tmp_path, 0)
  message = _one_line_error(lambda: orderings.build([path], orderings.OrderingSpec(
      key="gradient_loss", gradient_loss_form="grad_norm")))
  assert message == (
      f"--scores '{path}' lacks the tables grad_norm that --key=gradient_loss "
      "--gradient_loss_form=grad_norm reads (available: forgetting, never_learned, "
      "presentations); gradient norms are computed by training_dynamics runs with "
      "--config.method.grad_norm_epoch=E (E >= 1)")
  message = _one_line_error(lambda: orderings.build([path], orderings.OrderingSpec(
      key="max_loss_increase", relative=True)))
  assert message.startswith(f"--scores '{path}' lacks the tables max_relative_loss_increase "
                            "that --key=max_loss_increase --relative reads")
  assert "grad_norm_epoch" not in message


def test_score_files_of_one_seed_twice_or_of_other_data_name_both_files(tmp_path):
  first = _run_file(tmp_path, 0)
  again = str(tmp_path / "again.npz")
  artifacts.save(again, artifacts.load(first))
  assert _one_line_error(lambda: orderings.build([first, again], orderings.OrderingSpec())
                         ) == (f"--scores '{again}' and '{first}' both hold seed 0; give "
                               "score files of distinct seeds (one seed twice would count "
                               "it twice)")
  tables = artifacts.load(first).tables
  other_data = artifacts.save(str(tmp_path / "other.npz"), artifacts.ScoreFile(
      example_ids=IDS, tables=tables, fingerprint="xyz", dataset_name="toy", num_epochs=10,
      seeds=(1,), config={}))
  assert _one_line_error(lambda: orderings.build([first, other_data],
                                                 orderings.OrderingSpec())
                         ) == (f"--scores '{other_data}' was made on other data than "
                               f"'{first}' (fingerprint xyz vs abc); give the score files "
                               "of runs on the same dataset, train fraction and split seed")
  other_ids = artifacts.save(str(tmp_path / "ids.npz"), artifacts.ScoreFile(
      example_ids=IDS[:3], tables={name: values[:3] for name, values in tables.items()},
      fingerprint="abc", dataset_name="toy", num_epochs=10, seeds=(2,), config={}))
  message = _one_line_error(lambda: orderings.build([first, other_ids],
                                                    orderings.OrderingSpec()))
  assert message.startswith(f"--scores '{other_ids}' was made on other data than "
                            f"'{first}' (example ids (3 vs 4 ids))")


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_score_file_is_refused_naming_the_flag_and_the_file(tmp_path, case):
  good = _run_file(tmp_path, 0)
  build, mention = MALFORMED[case]
  bad = build(tmp_path)
  # Second in the list: the message must name the bad file, not the first one.
  message = _one_line_error(lambda: orderings.build([good, bad], orderings.OrderingSpec()))
  assert message.startswith(f"--scores '{bad}"), message
  assert mention in message, message
  assert "config." not in message, message  # the command line has no config


@pytest.mark.parametrize("args, message", [
    (["--scores", "a.npz"], "the following arguments are required: --out (see python -m "
     "jaxsel.orderings --help)"),
    (["--scores", "a.npz", "--out", "o.npz", "--keys", "forgetting"],
     "unrecognized arguments: --keys forgetting (see python -m jaxsel.orderings --help)"),
    (["--scores", "a.npz", "--out", "o.npz", "--seed", "one"],
     "argument --seed: invalid int value: 'one' (see python -m jaxsel.orderings --help)"),
    (["--scores", "a.npz", "--out", "order.txt"],
     "--out must name a .npz file, got 'order.txt'"),
    (["--scores", "", "--out", "o.npz"], "--scores must be at least one score file, got []"),
])
def test_command_line_mistakes_are_one_line_user_errors(args, message):
  # Each is refused before a.npz (which does not exist) is read.
  assert _one_line_error(lambda: orderings.main(args)) == message


def test_command_line_writes_the_ordering(tmp_path, capsys):
  paths = [_run_file(tmp_path, 0, forgetting=np.asarray([2, 0, 1, 0], np.int32))]
  out = str(tmp_path / "order.npz")
  orderings.main(["--scores", ",".join(paths), "--out", out, "--tie_break", "index"])
  np.testing.assert_array_equal(orderings.ordered_ids(artifacts.load(out)), [5, 9, 7, 2])
  assert "50.0 % have score 0" in capsys.readouterr().out


def test_command_line_refuses_a_garbage_score_file_in_one_line(tmp_path):
  garbage = tmp_path / "seed0.npz"
  garbage.write_bytes(b"\x00\x13 no archive here \xff" * 8)
  out = tmp_path / "order.npz"
  process = run_cli(f"--scores={garbage}", f"--out={out}", module="jaxsel.orderings")
  line = assert_cli_refused(process, "--scores", str(garbage))
  assert line == (f"error: --scores '{garbage}' is not a score file: it is not an .npz "
                  "archive (a zip file as np.savez writes)")
  assert not out.exists()


def test_command_line_refuses_an_unknown_key_in_one_line(tmp_path):
  path = _run_file(tmp_path, 0)
  out = tmp_path / "order.npz"
  process = run_cli(f"--scores={path}", f"--out={out}", "--key=forgets",
                    module="jaxsel.orderings")
  line = assert_cli_refused(process, "--key")
  assert line == ("error: unknown --key 'forgets'; valid: forgetting, max_loss_increase, "
                  "gradient_loss")
  assert process.stdout == "" and not out.exists()
  assert sorted(os.listdir(tmp_path)) == ["seed0.npz"]


@pytest.fixture(scope="module")
def dynamics_run(tmp_path_factory, mnist1d_dir):
  """4 epochs of training dynamics with trajectories and gradient norms after epoch 2."""
  from configs import default  # pylint: disable=import-outside-toplevel
  config = with_method(default.get_config(), "training_dynamics", **{
      "dataset.data_dir": mnist1d_dir, "model.kwargs": {"channels": 8, "conv_impl": "auto"},
      "train.num_epochs": 4, "train.batch_size": 64, "progress_bar": "off",
      "figures": False, "method.per_epoch": True, "method.grad_norm_epoch": 2})
  workdir = str(tmp_path_factory.mktemp("dynamics"))
  summary = train.train_and_evaluate(config, workdir)
  return workdir, summary


def test_dynamics_run_records_slopes_first_learned_and_grad_norms(dynamics_run):
  workdir, summary = dynamics_run
  scores = artifacts.load(workdir)
  losses = scores.table("loss_by_epoch").astype(np.float64)
  t = np.arange(1, 5)
  expected = ((t - t.mean()) * (losses - losses.mean(axis=1, keepdims=True))).sum(axis=1) / (
      (t - t.mean()) ** 2).sum()
  np.testing.assert_allclose(scores.table("loss_slope"), expected, rtol=1e-4, atol=1e-5)
  correct = scores.table("correct_by_epoch").astype(bool)
  first = np.where(correct.any(axis=1), correct.argmax(axis=1) + 1, 0)
  np.testing.assert_array_equal(scores.table("first_learned"), first)
  last_wrong = np.where((~correct).any(axis=1), 4 - np.argmax(~correct[:, ::-1], axis=1), 0)
  np.testing.assert_array_equal(scores.table("presentations_needed_to_learn"), last_wrong)
  norms = scores.table("grad_norm")
  assert np.all(np.isfinite(norms)) and np.all(norms >= 0) and norms.mean() > 0
  # Gradient norms grow with the loss: the highest-loss tenth has the larger mean norm.
  final_loss = scores.table("loss")
  high = final_loss >= np.quantile(final_loss, 0.9)
  assert norms[high].mean() > norms[~high].mean()
  assert summary["scoring_seconds"] > 0  # the gradient-norm pass after epoch 2


def test_a_grad_norm_epoch_past_the_run_is_refused(tiny_config, tmp_path):
  config = with_method(tiny_config, "training_dynamics", **{"method.grad_norm_epoch": 4})
  with pytest.raises(ValueError, match=r"config.method.grad_norm_epoch must be an integer "
                     r"in \[0, train.num_epochs=3\]"):
    train.train_and_evaluate(config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


def test_grad_norms_of_the_final_model(tiny_config, tmp_path):
  config = with_method(tiny_config, "training_dynamics", **{"method.grad_norm_epoch": 3,
                                                            "figures": False})
  summary = train.train_and_evaluate(config, str(tmp_path / "run"))
  norms = artifacts.load(str(tmp_path / "run")).table("grad_norm")
  assert len(norms) == summary["num_train"] and np.all(norms > 0)
  assert summary["scoring_seconds"] == 0  # computed at the end, not before an epoch
