"""Configs: every paper cell builds a valid config with the paper's hyper-parameters."""

import pytest

from configs import default
from configs.papers import calib_prioritization as paper
from jaxsel import config_checks
from tests.conftest import override


def test_default_config_is_valid_and_locked():
  config = default.get_config()
  config_checks.check_config(config)
  with pytest.raises(AttributeError):
    config.no_such_field = 1


def test_sweep_lists_tables_1_and_2_and_every_config_is_valid():
  runs = paper.sweep("mnist1d", seeds=(0, 1, 2))
  # Table 1: 4 calibrations x 4 sizes; random baseline: 3 sizes; Table 2: 4 x 3.
  assert len(runs) == (16 + 3 + 12) * 3
  for arg, _ in runs[::3]:
    config = paper.get_config(arg)
    if config.method.target.required:  # Table 2 cells need the target's score file
      with pytest.raises(ValueError, match="config.method.target.path must name"):
        config_checks.check_config(config)
      config = override(config, **{"method.target.path": "runs/target"})
    config_checks.check_config(config)


@pytest.mark.parametrize("arg,loss,mixing,field,value", [
    ("cifar10,focal,20", "focal", "none", "loss.focal_gamma", 3.0),
    ("cifar10,focal,20,target", "focal", "none", "loss.focal_gamma", 2.0),
    ("cifar100,mixup,10", "cross_entropy", "mixup", "mixing.alpha", 0.35),
    ("cifar100,label_smoothing,10,target", "label_smoothing", "none",
     "loss.label_smoothing", 0.09),
    ("mnist1d,mixup,30", "cross_entropy", "mixup", "mixing.alpha", 0.3),  # CIFAR-10's value
    ("mnist1d,none,10", "cross_entropy", "none", None, None),
])
def test_cells_use_the_papers_hyper_parameters(arg, loss, mixing, field, value):
  config = paper.get_config(arg)
  assert (config.loss.name, config.mixing.name) == (loss, mixing)
  if field:
    section, name = field.split(".")
    assert config[section][name] == value


def test_cifar_settings_follow_the_paper():
  config = paper.get_config("cifar10,none,10")
  assert (config.model.name, config.train.batch_size, config.train.num_epochs) == (
      "resnet34", 32, 200)
  assert config.optimizer.learning_rate == 0.01
  assert paper.get_config("cifar100").optimizer.learning_rate == 0.1
  assert config.method.name == "prioritization"
  assert config.method.selector == "top_k" and config.method.subset_fraction == 0.1
  assert config.method.warmup_epochs == 10
  assert (config.augmentation.name, config.augmentation.pad_mode) == ("crop_flip", "black")
  # The reference's CIFAR-10 normalisation (ALGORITHMS.md 0.4); CIFAR-100 keeps its own.
  assert tuple(config.dataset.normalization_std) == (0.2023, 0.1994, 0.2010)
  assert tuple(paper.get_config("cifar100").dataset.normalization_std) == ()
  assert paper.get_config("cifar10,none,10,random").method.selector == "random"
  assert paper.get_config("cifar10,none,100").method.subset_fraction == 1.0
  target = paper.get_config("cifar100,target_model")
  assert (target.model.name, target.mixing.name, target.mixing.alpha) == (
      "resnet50", "mixup", 0.25)
  assert target.method.save_scores and target.method.subset_fraction == 1.0


def test_only_the_target_variant_requires_a_target():
  assert paper.get_config("mnist1d,mixup,10,target").method.target.required
  assert not paper.get_config("mnist1d,mixup,10").method.target.required
  assert not paper.get_config("mnist1d,none,10,random").method.target.required


def test_default_config_takes_a_method_name():
  assert default.get_config().method.name == "full_data"
  config = default.get_config("prioritization")
  assert config.method.name == "prioritization" and config.method.selector == "top_k"
  config_checks.check_config(config)
  with pytest.raises(ValueError, match="unknown config.method.name 'nope'; valid: "):
    default.get_config("nope")


@pytest.mark.parametrize("arg,message", [
    ("imagenet", "unknown dataset 'imagenet'"),
    ("cifar10,temperature", "unknown calibration 'temperature'"),
    ("cifar10,mixup,50", "unknown subset percent 50"),
    ("cifar10,mixup,10,coreset", "unknown variant 'coreset'"),
])
def test_bad_arguments_name_the_valid_values(arg, message):
  with pytest.raises(ValueError, match=message):
    paper.get_config(arg)
