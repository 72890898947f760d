"""Configs: every paper cell builds a valid config with the paper's hyper-parameters."""

import pytest

from configs import default
from configs.papers import calib_prioritization as paper
from jaxsel import config_checks


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
    config_checks.check_config(paper.get_config(arg))


@pytest.mark.parametrize("arg,field,value", [
    ("cifar10,focal,20", "focal_gamma", 3.0),
    ("cifar10,focal,20,target", "focal_gamma", 2.0),
    ("cifar100,mixup,10", "mixup_alpha", 0.35),
    ("cifar100,label_smoothing,10,target", "label_smoothing", 0.09),
    ("mnist1d,mixup,30", "mixup_alpha", 0.3),  # CIFAR-10's value
])
def test_cells_use_the_papers_hyper_parameters(arg, field, value):
  config = paper.get_config(arg)
  assert config.calibration.method == arg.split(",")[1]
  assert config.calibration[field] == value


def test_cifar_settings_follow_the_paper():
  config = paper.get_config("cifar10,none,10")
  assert (config.model.name, config.train.batch_size, config.train.num_epochs) == (
      "resnet34", 32, 200)
  assert config.optimizer.learning_rate == 0.01
  assert paper.get_config("cifar100").optimizer.learning_rate == 0.1
  assert config.selection.method == "top_k" and config.selection.subset_fraction == 0.1
  assert config.selection.warmup_epochs == 10 and config.augmentation == "crop_flip"
  assert paper.get_config("cifar10,none,10,random").selection.method == "random"
  assert paper.get_config("cifar10,none,100").selection.method == "none"
  target = paper.get_config("cifar100,target_model")
  assert (target.model.name, target.calibration.mixup_alpha) == ("resnet50", 0.25)
  assert target.target.save_artifact


@pytest.mark.parametrize("arg,message", [
    ("imagenet", "unknown dataset 'imagenet'"),
    ("cifar10,temperature", "unknown calibration 'temperature'"),
    ("cifar10,mixup,50", "unknown subset percent 50"),
    ("cifar10,mixup,10,coreset", "unknown variant 'coreset'"),
])
def test_bad_arguments_name_the_valid_values(arg, message):
  with pytest.raises(ValueError, match=message):
    paper.get_config(arg)
