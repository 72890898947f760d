"""config_checks.check_config: every field of every section is refused, naming the field,
for a value that cannot work (one-line UserError, before any data is loaded)."""

import ml_collections
import pytest

from configs import default
from jaxsel import config_checks, methods, optim
from jaxsel.config_errors import UserError, choice, did_you_mean, one_line_repr, require
from tests.conftest import override

NAN, INF = float("nan"), float("inf")


def _leaves(node: ml_collections.ConfigDict, prefix: str = ""):
  """Dotted names of every non-section field under ``node``."""
  for name in sorted(node.keys()):
    if isinstance(node[name], ml_collections.ConfigDict):
      yield from _leaves(node[name], f"{prefix}{name}.")
    else:
      yield f"{prefix}{name}"


def _forced(config, dotted: str, value):
  """A copy of ``config`` with ``value`` at ``dotted`` whatever the field's type (as a
  section replaced wholesale, e.g. by a paper config, can hold; ``override`` keeps the
  type-safety of ConfigDict, which refuses e.g. 1 for a bool field)."""
  config = config.copy_and_resolve_references()
  *parents, leaf = dotted.split(".")
  with config.unlocked():
    node = config
    for name in parents:
      node = node[name]
    del node[leaf]
    node[leaf] = value
  return config


def _method_config(name: str) -> ml_collections.ConfigDict:
  config = default.get_config(name)
  if name == "coreset":  # its default rule needs a score file
    config = override(config, **{"method.scores_path": "runs/scores"})
  if name == "rho_loss":  # it needs the irreducible_loss run's score file
    config = override(config, **{"method.irreducible_loss_path": "runs/il"})
  return config


def _refused(config, *mentions: str) -> str:
  with pytest.raises(UserError) as info:
    config_checks.check_config(config)
  message = str(info.value)
  assert "\n" not in message, message
  for mention in mentions:
    assert mention in message, (mention, message)
  return message


# Every field of the default config, and every field of each method's own section.
_EVERY_FIELD = ([("full_data", field) for field in _leaves(default.get_config())]
                + [(name, field) for name in methods.METHODS
                   for field in _leaves(methods.default_config(name), "method.")
                   if field != "method.name"])


def test_the_default_config_of_every_method_passes():
  for name in methods.METHODS:
    config_checks.check_config(_method_config(name))


@pytest.mark.parametrize("method,field", _EVERY_FIELD)
def test_every_field_has_a_check(method, field):
  # None is wrong for every field, whatever its type: a field without a check of its
  # type would let it through (or fail later naming nothing).
  _refused(override(_method_config(method), **{field: None}), f"config.{field}")


@pytest.mark.parametrize("field,value,allowed", [
    ("seed", -1, "an integer in [0, 2**31)"),
    ("seed", True, "an integer"),
    ("dataset.name", "", "a dataset name"),
    ("dataset.train_fraction", NAN, "in (0, 1]"),
    ("dataset.split_seed", -3, "an integer >= 0"),
    ("dataset.normalization_mean", (NAN,), "finite"),
    # A zero std makes every input infinite and the loss NaN.
    ("dataset.normalization_std", (0.0,), "> 0"),
    ("dataset.normalization_std", (0.5, INF, 0.5), "finite"),
    ("optimizer.learning_rate", INF, "a finite real >= 0"),
    ("optimizer.learning_rate", NAN, "a finite real >= 0"),
    ("optimizer.learning_rate", -0.1, "a finite real >= 0"),
    ("optimizer.momentum", NAN, "in [0, 1)"),
    ("optimizer.momentum", -0.5, "in [0, 1)"),
    ("optimizer.momentum", 1.0, "in [0, 1)"),
    ("optimizer.weight_decay", NAN, "a finite real >= 0"),
    ("optimizer.weight_decay", INF, "a finite real >= 0"),
    ("schedule.lr_warmup_epochs", NAN, "in [0, 60)"),
    ("schedule.lr_warmup_epochs", -1.0, "in [0, 60)"),
    ("schedule.lr_warmup_epochs", 60.0, "in [0, 60)"),
    ("schedule.end_learning_rate", NAN, "a finite real >= 0"),
    ("schedule.decay_factor", NAN, "a finite real > 0"),
    ("schedule.decay_factor", -0.2, "a finite real > 0"),
    ("schedule.decay_factor", 0.0, "a finite real > 0"),
    ("loss.label_smoothing", NAN, "in [0.0, 1.0]"),
    ("loss.focal_gamma", INF, "a finite real >= 0"),
    ("loss.focal_gamma", NAN, "a finite real >= 0"),
    ("mixing.alpha", NAN, "> 0 and finite"),
    ("mixing.alpha", INF, "> 0 and finite"),
    ("train.num_epochs", True, "an integer >= 0"),
    ("train.batch_size", True, "a positive integer"),
    ("train.eval_batch_size", 0, "a positive integer"),
    ("train.steps_per_chunk", -2, "a positive integer"),
    ("noise.value_std", NAN, "a finite real >= 0"),
    ("noise.value_mean", INF, "a finite real"),
    ("noise.label_percent", NAN, "in [0, 100]"),
    ("augmentation.crop_padding", True, "an integer >= 0"),
    ("augmentation.randaugment_num_ops", -1, "an integer >= 0"),
    ("augmentation.randaugment_magnitude", 31, "a number in [0, 30]"),
    ("metrics.num_bins", 0, "a positive integer"),
    ("checkpoint.every_seconds", NAN, ">= 0"),
    ("checkpoint.max_to_keep", 0, "a positive integer"),
    ("model.kwargs.channels", 0, "a positive integer"),
    ("model.kwargs.channels", (8, 0, 8), "a positive integer"),
    ("model.kwargs.conv_impl", "bogus", "one of auto, im2col, xla"),
])
def test_bad_value_is_refused_naming_the_field(field, value, allowed):
  message = _refused(_forced(default.get_config(), field, value), f"config.{field}",
                     allowed)
  assert message.endswith(f"got {value!r}"), message


@pytest.mark.parametrize("fields,field,allowed", [
    ({"milestone_epochs": (30, 20)}, "milestone_epochs", "strictly increasing"),
    # Repeated, it would decay once, not twice.
    ({"milestone_epochs": (20, 20)}, "milestone_epochs", "strictly increasing"),
    ({"milestone_epochs": (-1, 20)}, "milestone_epochs", "integers >= 0"),
    ({"milestone_epochs": (20.5,)}, "milestone_epochs", "integers"),
    # A run of 60 epochs has epochs 0..59: a milestone at 60 never decays.
    ({"milestone_epochs": (20, 60)}, "milestone_epochs", "at most 59"),
    ({"milestone_epochs": (59,), "late_multistep_decay": True}, "milestone_epochs",
     "at most 58"),
    ({"milestone_epochs": (2,), "lr_warmup_epochs": 5.0}, "milestone_epochs",
     "at or after the warm-up's end"),
])
def test_multistep_milestones_are_checked_in_epochs(fields, field, allowed):
  config = override(default.get_config(), **{"schedule.name": "multistep",
                                             **{f"schedule.{k}": v for k, v in fields.items()}})
  _refused(config, f"config.schedule.{field}", allowed)


def test_milestones_are_epochs_also_for_a_per_step_schedule():
  # 'step' converts milestone epochs to the first step of that epoch, so fractional epochs
  # are allowed and the end is still the run's last epoch, not its last step.
  config = override(default.get_config(), **{
      "schedule.name": "multistep", "schedule.unit": "step",
      "schedule.milestone_epochs": (20.5, 59)})
  config_checks.check_config(config)
  _refused(override(config, **{"schedule.milestone_epochs": (20.5, 60)}),
           "config.schedule.milestone_epochs", "at most 59 for a run of 60 epochs")


def test_milestones_of_a_run_given_in_steps_are_checked_when_its_epochs_are_known():
  config = override(default.get_config(), **{
      "train.num_epochs": 0, "train.num_train_steps": 100, "schedule.name": "multistep",
      "schedule.unit": "step", "schedule.milestone_epochs": (4,)})
  config_checks.check_config(config)  # the run's epochs are not known yet
  schedule = optim.make_schedule(config, epoch_steps=[20] * 5)  # epochs 0..4
  assert float(schedule(80)) == pytest.approx(0.05 * 0.2)
  with pytest.raises(UserError, match=r"config.schedule.milestone_epochs must be epochs at "
                                      r"most 3 for a run of 4 epochs"):
    optim.make_schedule(config, epoch_steps=[25] * 4)
  with pytest.raises(UserError, match=r"config.schedule.lr_warmup_epochs must be in \[0, 4\)"):
    optim.make_schedule(override(config, **{"schedule.milestone_epochs": (),
                                            "schedule.lr_warmup_epochs": 4.0}),
                        epoch_steps=[25] * 4)


def test_milestones_of_other_schedules_are_only_type_checked():
  config = override(default.get_config(), **{"schedule.milestone_epochs": (500, 100)})
  config_checks.check_config(config)  # cosine ignores them


def test_nesterov_needs_momentum():
  config = override(default.get_config(), **{"optimizer.nesterov": True,
                                             "optimizer.momentum": 0.0})
  _refused(config, "config.optimizer.momentum", "> 0 with config.optimizer.nesterov=True")
  # Adam ignores both.
  config_checks.check_config(override(config, **{"optimizer.name": "adam"}))


@pytest.mark.parametrize("method,field,value,allowed", [
    ("prioritization", "method.save_scores", 1, "True or False"),
    ("prioritization", "method.target.required", "yes", "True or False"),
    ("prioritization", "method.subset_fraction", NAN, "a finite real"),
    ("prioritization", "method.subset_fraction", 1.5, "in (0, 1]"),
    ("training_dynamics", "method.relative_delta", INF, "a finite real"),
    ("training_dynamics", "method.relative_delta", 0.0, "a finite real > 0"),
    ("training_dynamics", "method.per_epoch", 0, "True or False"),
    ("coreset", "method.descending", "no", "True or False"),
    ("coreset", "method.pruning_rate", INF, "a finite real"),
    ("budgeted", "method.budget", NAN, "a finite real"),
    ("selective_backprop", "method.beta", INF, "a finite real"),
    ("selective_backprop", "method.history_size", 2048.0, "an integer"),
])
def test_bad_method_value_is_refused_naming_the_field(method, field, value, allowed):
  _refused(_forced(_method_config(method), field, value), f"config.{field}", allowed)


def test_unknown_or_missing_method_fields_are_refused():
  config = default.get_config("prioritization")
  with config.unlocked():
    config.method.subset_fractoin = 0.2
  message = _refused(config, "config.method.subset_fractoin")
  assert "did you mean 'subset_fraction'?" in message
  config = default.get_config("prioritization")
  with config.unlocked():
    del config.method["tie_break"]
  _refused(config, "config.method.tie_break is missing (its default: 'random')")


def test_normalization_mean_and_std_must_have_the_same_length():
  config = override(default.get_config(), **{"dataset.normalization_mean": (0.5, 0.5),
                                             "dataset.normalization_std": (0.25,)})
  _refused(config, "config.dataset.normalization_std", "as long as")
  config = override(default.get_config(), **{"dataset.normalization_std": (0.25,)})
  _refused(config, "config.dataset.normalization_std", "both [] for")


@pytest.mark.parametrize("model,kwargs,field,allowed", [
    ("cnn1d", {"depth": 3}, "depth", "model 'cnn1d' has no option 'depth'; valid: channels"),
    ("cnn1d", {"chanels": 8}, "chanels", "did you mean 'channels'?"),
    ("cnn1d", {"num_classes": 3}, "num_classes", "has no option 'num_classes'"),
    ("cnn1d", {"channels": "8"}, "channels", "a positive integer"),
    ("cnn1d", {"kernel_sizes": (5, 3)}, "kernel_sizes", "a list of 3 (one per conv layer"),
    ("cnn1d", {"strides": (2, 0, 2)}, "strides", "a positive integer"),
    ("cnn1d", {"padding": "same"}, "padding", "'SAME' or 'VALID'"),
    ("cnn1d", {"padding": -1}, "padding", "an integer >= 0"),
    ("mlp", {"hidden_sizes": (100, -1)}, "hidden_sizes", "a list of positive integers"),
    ("mlp", {"hidden_sizes": 100}, "hidden_sizes", "a list of positive integers"),
    ("cnn2d", {"channels": (32, 0)}, "channels", "a list of positive integers"),
    ("cnn2d", {"hidden_size": -1}, "hidden_size", "an integer >= 0"),
    ("cnn2d", {"use_batchnorm": "yes"}, "use_batchnorm", "True or False"),
    ("mnist_cnn", {"dropout_rate": 1.0}, "dropout_rate", "in [0, 1)"),
    ("mnist_cnn", {"dropout_rate": -0.1}, "dropout_rate", "in [0, 1)"),
    ("resnet18", {"num_filters": 0}, "num_filters", "a positive integer"),
    ("resnet50", {"conv_impl": "cudnn"}, "conv_impl", "one of auto, im2col, xla"),
    ("mnist_cnn", {"dtype": "float16"}, "dtype", "one of float32, bfloat16"),
])
def test_bad_model_options_are_refused_naming_the_option(model, kwargs, field, allowed):
  config = override(default.get_config(), **{"model.name": model, "model.kwargs": kwargs})
  _refused(config, f"config.model.kwargs.{field}", allowed)


def test_unknown_model_name_suggests_the_closest():
  message = _refused(override(default.get_config(), **{"model.name": "cnn_1d"}),
                     "unknown config.model.name 'cnn_1d'")
  assert message.endswith("; did you mean 'cnn1d'?"), message


def test_choice_and_did_you_mean():
  assert did_you_mean("cosin", ("constant", "cosine")) == "did you mean 'cosine'? "
  assert did_you_mean("zzz", ("constant", "cosine")) == ""
  assert did_you_mean(3, ("constant",)) == ""
  with pytest.raises(UserError, match=r"^unknown config.schedule.name 'cosin'; valid: "
                                      r"constant, cosine; did you mean 'cosine'\?$"):
    choice("cosin", "schedule.name", ("cosine", "constant"))
  with pytest.raises(UserError, match="unknown config.x 3; valid: a"):
    choice(3, "x", ("a",))


def test_values_are_shown_on_one_line():
  section = ml_collections.ConfigDict({"a": 1, "b": 2})
  assert "\n" in repr(section)
  assert one_line_repr(section) == "a: 1 b: 2"
  with pytest.raises(UserError, match=r"^config.x must be 3, got a: 1 b: 2$"):
    require(False, "x", "3", section)
  _refused(_forced(default.get_config(), "seed", section), "config.seed must be")


@pytest.mark.parametrize("field,value,allowed", [
    ("train.drop_remainder", 1, "True or False"),
    ("figures", "yes", "True or False"),
    ("augmentation.flip", 0, "True or False"),
    ("metrics.reference_binning", 1, "True or False"),
    ("schedule.end_at_last_step", 1, "True or False"),
    ("train.batch_size", 32.0, "a positive integer"),
    ("dataset.data_dir", 3, "a directory (str"),
    ("schedule.milestone_epochs", "60,120", "a list of epochs"),
])
def test_values_of_another_type_are_refused(field, value, allowed):
  # What ConfigDict's own type-safety lets through once a section is replaced wholesale.
  _refused(_forced(default.get_config(), field, value), f"config.{field}", allowed)


def test_a_dataset_that_cannot_be_prepared_is_one_line_naming_the_fields(tmp_path,
                                                                         monkeypatch):
  from jaxsel import data  # pylint: disable=import-outside-toplevel
  from jaxsel.data import fashion_mnist_builder  # pylint: disable=import-outside-toplevel
  monkeypatch.setenv(fashion_mnist_builder.DIR_ENV_VAR, str(tmp_path / "nowhere"))
  with pytest.raises(data.DatasetNotPreparedError) as info:
    data.load_dataset("fashion_mnist_local", data_dir=str(tmp_path / "tfds"))
  assert isinstance(info.value, UserError) and isinstance(info.value, FileNotFoundError)
  message = str(info.value)
  assert "\n" not in message
  assert message.startswith("dataset 'fashion_mnist_local' (config.dataset.name) is not "
                            "prepared yet")
  assert f"missing: {tmp_path / 'nowhere' / 'train-images-idx3-ubyte.gz'}, " in message
  assert "sudo apt-get install dataset-fashion-mnist" in message


def test_an_unknown_dataset_suggests_the_closest_name():
  from jaxsel import data  # pylint: disable=import-outside-toplevel
  with pytest.raises(UserError, match=r"^Unknown dataset 'mnist2d' \(config.dataset.name\)\. "
                                      r"Known: mnist1d, .*; did you mean 'mnist1d'\?$"):
    data.load_dataset("mnist2d")


def test_an_unprepared_catalog_dataset_is_one_line_saying_how_to_prepare_it(tmp_path,
                                                                            monkeypatch):
  import socket  # pylint: disable=import-outside-toplevel
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  from jaxsel import data  # pylint: disable=import-outside-toplevel

  def refuse(*args, **kwargs):
    raise AssertionError("reached the network or prepared a catalog dataset")

  monkeypatch.setattr(socket.socket, "connect", refuse)
  monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", refuse)
  with pytest.raises(UserError) as info:
    data.load_dataset("cifar10", data_dir=str(tmp_path))
  message = str(info.value)
  assert "\n" not in message
  assert message.startswith("dataset 'cifar10' (config.dataset.name) is not prepared")
  assert f"in config.dataset.data_dir '{tmp_path}'" in message
  assert f"`tfds build cifar10 --file_format=array_record --data_dir={tmp_path}`" in message
