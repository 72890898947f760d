"""Configs: every paper cell builds a valid config with the paper's hyper-parameters."""

import pytest

from configs import default
from configs.papers import budgeted_importance_sampling as bis
from configs.papers import calib_prioritization as paper
from jaxsel import config_checks, train
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


def test_coverage_centric_coreset_configs_follow_the_paper():
  from configs.papers import coverage_centric_coreset as ccs  # pylint: disable=import-outside-toplevel
  scores = ccs.get_config("cifar10,scores")
  assert (scores.method.name, scores.train.num_epochs, scores.model.name) == (
      "training_dynamics", 200, "resnet18")
  assert (scores.train.batch_size, scores.train.drop_remainder) == (256, False)
  assert (scores.optimizer.learning_rate, scores.optimizer.nesterov,
          scores.optimizer.weight_decay) == (0.1, True, 5e-4)
  assert (scores.schedule.name, scores.schedule.unit, scores.schedule.end_learning_rate) == (
      "cosine", "step", 1e-4)
  assert (scores.augmentation.name, scores.augmentation.pad_mode) == ("crop_flip", "reflect")
  assert scores.dataset.train_fraction == 1.0  # all 50,000 training images
  coreset = ccs.get_config("cifar10,ccs,90")
  assert coreset.method.name == "coreset" and coreset.train.num_train_steps == 40_000
  assert (coreset.method.rule, coreset.method.beta, coreset.method.pruning_rate) == (
      "ccs", 0.3, 0.9)
  assert ccs.get_config("cifar10,ccs,30").method.beta == 0.0
  forgetting = ccs.get_config("mnist1d,forgetting,50").method
  assert (forgetting.rule, forgetting.key, forgetting.descending) == (
      "monotonic", "forgetting", True)
  aum = ccs.get_config("mnist1d,aum,70").method
  assert (aum.key, aum.descending) == ("accumulated_margin", False)
  assert len(ccs.sweep("mnist1d", seeds=(0, 1, 2))) == 6 * 5 * 3
  for arg, _ in ccs.sweep("mnist1d", seeds=(0,)):
    config = ccs.get_config(arg)
    if config.method.rule != "random":
      config = override(config, **{"method.scores_path": "runs/scores"})
    config_checks.check_config(config)
  config_checks.check_config(ccs.get_config("mnist1d,scores"))


@pytest.mark.parametrize("arg,message", [
    ("imagenet,scores", "unknown dataset 'imagenet'"),
    ("cifar10,moderate,90", "unknown method 'moderate'"),
    ("cifar10,ccs,60", "unknown pruning percent '60'"),
    ("cifar10,ccs", "must be DATASET,scores or DATASET,METHOD,PRUNING_PERCENT"),
])
def test_coverage_centric_coreset_bad_arguments(arg, message):
  from configs.papers import coverage_centric_coreset as ccs  # pylint: disable=import-outside-toplevel
  with pytest.raises(ValueError, match=message):
    ccs.get_config(arg)


def test_coverage_centric_coreset_fashion_mnist_configs():
  from configs.papers import coverage_centric_coreset as ccs  # pylint: disable=import-outside-toplevel
  from configs.papers import selection_comparison  # pylint: disable=import-outside-toplevel
  scores = ccs.get_config("fashion_mnist,scores")
  assert (scores.dataset.name, scores.dataset.train_fraction,
          scores.dataset.train_subset_size) == ("fashion_mnist_local", 0.9, 12_000)
  assert (scores.model.name, scores.optimizer.learning_rate, scores.train.eval_batch_size,
          scores.train.num_epochs, scores.method.name) == (
              "mnist_cnn", 0.05, 1000, 20, "training_dynamics")
  # Fashion-MNIST runs as in the selection comparison: the same data, subset, model and
  # augmentation.
  other = selection_comparison.get_config("fashion_mnist,full,1")
  for field in ("dataset", "model", "augmentation"):
    assert scores[field] == other[field], field
  config_checks.check_config(scores)
  coreset = ccs.get_config("fashion_mnist,ccs,90")
  with pytest.raises(ValueError, match="config.method.scores_path"):
    config_checks.check_config(coreset)
  config_checks.check_config(override(coreset, **{"method.scores_path": "runs/scores"}))
  # The subset is drawn from the 54,000 training ids after the 6,000 validation ids are
  # split off, so 12,000 train: 10 epochs of ⌈12,000 / 256⌉ = 47 steps, validated every 2.
  dataset = train.load_data(scores)
  assert (len(dataset.train_ids), len(dataset.validation_ids)) == (12_000, 6_000)
  steps_per_epoch = (len(dataset.train_ids) + 255) // 256
  assert coreset.train.num_train_steps == ccs.CORESET_STEPS["fashion_mnist"] == (
      10 * steps_per_epoch) == 470
  assert (coreset.train.num_epochs, coreset.eval.every_steps) == (0, 2 * steps_per_epoch)
  assert (coreset.method.rule, coreset.method.beta, coreset.method.pruning_rate) == (
      "ccs", 0.3, 0.9)
  sweep = ccs.sweep("fashion_mnist", seeds=(0, 1, 2, 3, 4))
  assert len(sweep) == 6 * 3 * 5
  assert sorted({int(arg.split(",")[2]) for arg, _ in sweep}) == [50, 80, 90]
  assert len(ccs.sweep("mnist1d", seeds=(0,))) == 6 * 5  # unchanged


def test_example_forgetting_configs_follow_the_paper():
  from configs.papers import example_forgetting as ef  # pylint: disable=import-outside-toplevel
  cifar = ef.get_config("cifar10,train")
  assert (cifar.method.name, cifar.model.name, cifar.train.num_epochs,
          cifar.train.batch_size) == ("full_data", "resnet18", 200, 128)
  assert (cifar.optimizer.learning_rate, cifar.optimizer.momentum, cifar.optimizer.nesterov,
          cifar.optimizer.weight_decay) == (0.1, 0.9, True, 5e-4)
  assert (cifar.schedule.name, tuple(cifar.schedule.milestone_epochs),
          cifar.schedule.decay_factor, cifar.schedule.late_multistep_decay) == (
              "multistep", (60, 120, 160), 0.2, False)
  assert (cifar.augmentation.name, cifar.augmentation.cutout_size) == ("crop_flip", 16)
  assert cifar.dataset.train_fraction == 1.0
  order = ef.get_config("cifar10,order")  # ordering runs: augmentation without cutout
  assert (order.method.name, order.augmentation.cutout_size) == ("training_dynamics", 0)
  assert (order.method.never_learned_value, order.method.grad_norm_epoch) == (
      "presentations", 20)
  mnist = ef.get_config("mnist,order")
  assert (mnist.model.name, mnist.train.batch_size, mnist.optimizer.learning_rate,
          mnist.optimizer.momentum, mnist.optimizer.weight_decay, mnist.schedule.name) == (
              "mnist_cnn", 64, 0.01, 0.5, 0.0, "constant")
  assert mnist.model.kwargs.dropout_rate == 0.0  # the README's --no_dropout
  for dataset in ef.DATASETS:
    for stage in ef.STAGES:
      config_checks.check_config(ef.get_config(f"{dataset},{stage}"))
  with pytest.raises(ValueError, match="unknown stage 'remove'"):
    ef.get_config("mnist1d,remove")
  with pytest.raises(ValueError, match="unknown dataset 'svhn'"):
    ef.get_config("svhn,order")


def test_budgeted_importance_sampling_configs_follow_the_paper():
  cifar = bis.get_config("cifar10,p,ricap,0.3")
  assert (cifar.method.name, cifar.method.sampler, cifar.method.budget) == (
      "budgeted", "p", 0.3)
  assert (cifar.model.name, cifar.train.num_epochs, cifar.train.batch_size,
          cifar.train.drop_remainder) == ("resnet18", 200, 128, True)
  optimizer = cifar.optimizer
  assert (optimizer.name, optimizer.learning_rate, optimizer.momentum, optimizer.nesterov,
          optimizer.weight_decay) == ("sgd", 0.1, 0.9, False, 1e-4)
  assert (cifar.schedule.name, cifar.schedule.unit, cifar.schedule.end_learning_rate,
          cifar.schedule.end_at_last_step) == ("linear", "step", 1e-6, True)
  assert (cifar.mixing.name, cifar.mixing.alpha, cifar.augmentation.name) == (
      "ricap", 0.3, "crop_flip")
  assert cifar.seed == 59719201 and cifar.dataset.train_fraction == 1.0
  # Budgeted SGD: 200 epochs × ⌊15,000 / 128⌋ = 117 steps, ≈ 30 % of the full run's steps.
  sgd = bis.get_config("cifar10,sgd,standard,0.3")
  assert (sgd.method.name, sgd.train.num_epochs, sgd.train.num_train_steps) == (
      "full_data", 0, 200 * 117)
  assert bis.get_config("cifar10,sgd,standard,1").train.num_epochs == 200
  fixed = bis.get_config("fashion_mnist,random,standard,0.2")
  assert (fixed.method.name, fixed.method.rule) == ("coreset", "random")
  assert fixed.method.pruning_rate == pytest.approx(0.8)
  sb = bis.get_config("mnist1d,sb,mixup,0.25")
  assert (sb.method.name, sb.method.beta, sb.mixing.name) == (
      "selective_backprop", 3.0, "mixup")
  randaugment = bis.get_config("fashion_mnist,unif,randaugment,0.3")
  assert (randaugment.augmentation.randaugment_num_ops,
          randaugment.augmentation.randaugment_magnitude) == (2, 4)
  for dataset in bis.DATASETS:
    for method in bis.METHODS:
      if method == "scores":  # all data
        with pytest.raises(ValueError, match="BUDGET must be 1"):
          bis.get_config(f"{dataset},{method},standard,0.5")
        config_checks.check_config(bis.get_config(f"{dataset},{method},standard,1"))
        continue
      config = bis.get_config(f"{dataset},{method},standard,0.5")
      if method == "coreset":  # needs a score file
        with pytest.raises(ValueError, match="config.method.scores_path"):
          config_checks.check_config(config)
      else:
        config_checks.check_config(config)
  for arg, message in (("cifar10,q,standard,0.3", "unknown method 'q'"),
                       ("cifar10,p,cutmix,0.3", "unknown augmentation 'cutmix'"),
                       ("cifar10,p,standard,0", r"budget '0' .* must be in \(0, 1\]"),
                       ("cifar10,p,standard,x", r"budget 'x'"),
                       ("cifar10,p,standard", "DATASET,METHOD,AUGMENTATION,BUDGET")):
    with pytest.raises(ValueError, match=message):
      bis.get_config(arg)


@pytest.mark.parametrize("name,num_train", [("fashion_mnist", 54_000), ("mnist1d", 45_000),
                                            ("fashion_mnist_small", 12_000)])
def test_budgeted_sgd_step_counts_use_the_loaded_training_set_size(name, num_train):
  dataset = train.load_data(bis.get_config(f"{name},sgd,standard,1"))
  assert len(dataset.train_ids) == bis.NUM_TRAIN[name] == num_train


def test_model_options_can_be_overridden_on_the_locked_default_config():
  # What --config.model.kwargs.channels=64 does; a locked config refuses unknown fields.
  config = default.get_config()
  config.model.kwargs.channels = 64
  config.model.kwargs.use_batchnorm = True
  from jaxsel import models  # pylint: disable=import-outside-toplevel
  model = models.get_model(config.model.name, num_classes=10, **config.model.kwargs)
  assert (model.channels, model.use_batchnorm) == (64, True)
  with pytest.raises(AttributeError):
    config.model.kwargs.width = 3


def test_infobatch_configs_follow_the_reference_example():
  from configs.papers import infobatch
  cifar = infobatch.get_config("cifar100,infobatch")
  assert (cifar.method.name, cifar.method.prune_ratio, cifar.method.anneal_fraction) == (
      "infobatch", 0.5, 0.125)
  assert (cifar.model.name, cifar.train.num_epochs, cifar.train.batch_size) == (
      "resnet18", 200, 128)
  assert (cifar.optimizer.name, cifar.optimizer.learning_rate, cifar.optimizer.momentum,
          cifar.optimizer.weight_decay) == ("sgd", 0.05, 0.9, 5e-4)
  schedule = cifar.schedule
  assert (schedule.name, schedule.unit, schedule.onecycle_pct_start,
          schedule.onecycle_div_factor, schedule.onecycle_final_div_factor) == (
              "onecycle", "step", 0.3, 25.0, 1e4)
  assert (cifar.loss.name, cifar.loss.label_smoothing) == ("label_smoothing", 0.1)
  assert (cifar.augmentation.name, cifar.augmentation.pad_mode) == ("crop_flip", "reflect")
  assert infobatch.get_config("cifar100,full").method.name == "full_data"
  for dataset in infobatch.DATASETS:
    for method in infobatch.METHODS:
      config_checks.check_config(infobatch.get_config(f"{dataset},{method}"))
  with pytest.raises(ValueError, match="DATASET,METHOD"):
    infobatch.get_config("cifar100,prune")


def test_rho_loss_configs_follow_the_reference_experiments():
  from configs.papers import rho_loss
  rho = rho_loss.get_config("cifar10,rho")
  assert (rho.method.name, rho.method.selected_fraction, rho.train.batch_size,
          rho.train.num_epochs) == ("rho_loss", 0.1, 320, 175)
  assert (rho.optimizer.name, rho.optimizer.learning_rate, rho.optimizer.weight_decay,
          rho.schedule.name) == ("adamw", 1e-3, 0.01, "constant")
  assert rho.dataset.train_fraction == 0.5 and rho.model.name == "resnet18"
  irreducible = rho_loss.get_config("cifar10,irreducible")
  assert (irreducible.method.name, irreducible.train.num_epochs) == ("irreducible_loss", 100)
  for dataset in rho_loss.DATASETS:
    config_checks.check_config(rho_loss.get_config(f"{dataset},irreducible"))
    config_checks.check_config(override(rho_loss.get_config(f"{dataset},rho"), **{
        "method.irreducible_loss_path": "runs/il"}))
