"""The streaming input path: the same runs as in memory, read chunk by chunk by id.

Every family's tiny run streamed on 4 devices chooses the same ids every epoch and ends with
the same numbers as in memory (``tests/device_runs.py`` runs both; they are bit-identical
here, the comparison allows float32 drift); a streamed run killed and resumed equals an
uninterrupted one; rows are read only for the real ids of a process's own columns; the
ImageNet configs run through the real streaming path on ``tfds.testing.mock_data``.
"""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds

from configs.papers import budgeted_importance_sampling, calib_prioritization
from configs.papers import coverage_centric_coreset
from jaxsel import config_checks, evaluation, models, train
from jaxsel.config_errors import UserError
from jaxsel.data import loading, streaming
from tests import device_runs
from tests.conftest import override, tiny_run_config, with_method
from tests.equivalence import assert_same_selections_and_numbers, records, summary
from tests.multihost import config_file_of, free_port, launch, wait
from tests.test_train import assert_killed_run_resumes_to


# --- the same runs as in memory ---------------------------------------------------------

@pytest.mark.xdist_group("device_runs")  # with the other 4-device tests
@pytest.mark.parametrize("family", list(device_runs.FAMILIES))
def test_a_streamed_run_chooses_the_same_examples_and_gives_the_numbers_of_memory(
    device_runs_dir, family):
  in_memory = os.path.join(device_runs_dir, family, "all")
  streamed = os.path.join(device_runs_dir, family, "stream")
  assert_same_selections_and_numbers(in_memory, streamed, same_fingerprint=False)
  with open(os.path.join(streamed, "config.json")) as f:
    assert json.load(f)["dataset"]["storage"] == "stream"
  # A new subset each epoch compiles nothing: the rows a chunk reads have one shape.
  with open(streamed + device_runs.COMPILATIONS_SUFFIX) as f:
    compilations = json.load(f)
  assert compilations[-1] == compilations[0], compilations


@pytest.mark.xdist_group("device_runs")  # with the other 4-device tests
def test_two_streaming_processes_give_the_numbers_of_one(device_runs_dir, tmp_path):
  """Each process reads only its own columns of every batch (a process that read all of
  them would fail to build the global array); the result is the one-process run's."""
  reference = os.path.join(device_runs_dir, "prioritization", "stream")
  workdir, logs = str(tmp_path / "run"), str(tmp_path / "run")
  processes = launch(config_file_of(tmp_path, reference), workdir, str(tmp_path / "cache"),
                     free_port(), logs)
  wait(processes, logs)
  assert_same_selections_and_numbers(reference, workdir)
  assert (summary(workdir)["num_devices"], summary(workdir)["num_processes"]) == (4, 2)


def test_a_killed_streaming_run_resumes_to_the_uninterrupted_numbers(mnist1d_dir, tmp_path):
  config = with_method(tiny_run_config(mnist1d_dir, **{"dataset.storage": "stream"}),
                       "prioritization", **device_runs.PRIORITIZATION)
  train.train_and_evaluate(config, str(tmp_path / "uninterrupted"))
  assert_killed_run_resumes_to(config, str(tmp_path / "uninterrupted"),
                               str(tmp_path / "killed"))


# --- what is read ---------------------------------------------------------------------

def test_streamed_inputs_are_bit_identical_to_the_loaded_arrays(mnist1d_dir):
  held = loading.load_dataset("mnist1d", data_dir=mnist1d_dir, storage="device")
  streamed = loading.load_dataset("mnist1d", data_dir=mnist1d_dir, storage="stream")
  assert streamed.streamed and not held.streamed
  for field in ("train_ids", "validation_ids"):
    np.testing.assert_array_equal(getattr(streamed, field), getattr(held, field))
  np.testing.assert_array_equal(streamed.pool.labels, held.pool.labels)
  np.testing.assert_array_equal(streamed.test.labels, held.test.labels)
  assert (streamed.input_shape, streamed.normalization, streamed.num_classes) == (
      held.input_shape, held.normalization, held.num_classes)
  assert streamed.fingerprint != held.fingerprint  # by design: sources, not values
  data = streaming.StreamedData(streamed, seed=0, read_threads=2)
  ids = np.random.default_rng(0).permutation(len(data))[:700].astype(np.int32)
  every = np.concatenate([held.pool.inputs, held.test.inputs])
  np.testing.assert_array_equal(data.read(ids, epoch=3), every[ids])
  np.testing.assert_array_equal(data.read(ids, epoch=None), every[ids])


def test_without_known_constants_a_stream_normalises_by_a_sample_of_training_ids(
    mnist1d_dir, monkeypatch):
  monkeypatch.delitem(loading.NORMALIZATION, "mnist1d")
  held = loading.load_dataset("mnist1d", data_dir=mnist1d_dir, storage="device")
  streamed = loading.load_dataset("mnist1d", data_dir=mnist1d_dir, storage="stream")
  # All 3,600 training ids in memory, a seeded 2,048 of them streamed.
  assert streamed.normalization.mean[0] == pytest.approx(held.normalization.mean[0], abs=0.03)
  assert streamed.normalization.std[0] == pytest.approx(held.normalization.std[0], rel=0.03)
  assert held.normalization.mean[0] != streamed.normalization.mean[0]


class _HalfColumns:
  """A placement whose process feeds the first half of each batch's columns (as process 0
  of 2 does), recording what it is handed."""

  def padded(self, example_ids, mask):
    return example_ids, mask

  def local_columns(self, shape):
    return slice(0, shape[1] // 2)

  def batch_rows(self, local, global_shape):
    del global_shape
    return local


def test_rows_read_only_the_real_ids_of_this_process_and_pad_with_example_zero(mnist1d_dir):
  dataset = loading.load_dataset("mnist1d", data_dir=mnist1d_dir, storage="stream")
  data = streaming.StreamedData(dataset, seed=0, read_threads=1)
  example_ids = np.array([[5, 6, 7, 8], [9, 0, 0, 0]], np.int32)
  mask = np.array([[True, True, True, True], [True, False, False, False]])
  asked = []
  read_into = data.read_into

  def recording(out, rows, ids, *, epoch):
    asked.append(ids.copy())
    read_into(out, rows, ids, epoch=epoch)

  data.read_into = recording
  rows = data.rows(example_ids, mask, epoch=0, placement=_HalfColumns())
  np.testing.assert_array_equal(np.concatenate(asked), [5, 6, 9])  # columns 0-1, real
  every = np.concatenate([dataset.pool.labels, dataset.test.labels])
  np.testing.assert_array_equal(rows.labels, [[every[5], every[6]], [every[9], every[0]]])
  data.read_into = read_into
  np.testing.assert_array_equal(rows.inputs[1, 1], data.read(np.zeros(1), epoch=None)[0])
  np.testing.assert_array_equal(rows.inputs.reshape(-1, 40)[:3],
                                data.read(np.array([5, 6, 9]), epoch=0))


def test_a_reader_thread_error_is_raised_in_the_caller(mnist1d_dir):
  dataset = loading.load_dataset("mnist1d", data_dir=mnist1d_dir, storage="stream")
  data = streaming.StreamedData(dataset, seed=0, read_threads=4)

  def broken(ids, rows, out, epoch):
    raise OSError(f"disk gone while reading {len(ids)} ids")

  data._read_group = broken  # pylint: disable=protected-access
  with pytest.raises(OSError, match="disk gone"):
    data.read(np.arange(512), epoch=0)


# --- choosing the path ------------------------------------------------------------------

@pytest.mark.parametrize("budget_mb, streams", [(0.1, True), (4096, False)])
def test_auto_streams_exactly_when_the_inputs_exceed_the_budget(mnist1d_dir, budget_mb,
                                                                streams):
  # mnist1d: 5,000 x 40 float32 = 0.76 MiB.
  dataset = loading.load_dataset("mnist1d", data_dir=mnist1d_dir, storage="auto",
                                 memory_budget_mb=budget_mb)
  assert dataset.streamed == streams


@pytest.mark.parametrize("fields, message", [
    ({"dataset.storage": "disk"}, "config.dataset.storage must be 'auto', 'device' or"),
    ({"dataset.read_threads": 0}, "config.dataset.read_threads must be an integer >= 1"),
    ({"dataset.memory_budget_mb": -1}, "config.dataset.memory_budget_mb must be"),
    ({"dataset.image_size": -2}, "config.dataset.image_size must be an integer >= 0"),
    ({"dataset.test_split": ""}, "config.dataset.test_split must be a split name"),
])
def test_bad_streaming_fields_are_refused_naming_the_field(mnist1d_dir, fields, message):
  with pytest.raises(UserError, match=message):
    config_checks.check_config(tiny_run_config(mnist1d_dir, **fields))


@pytest.mark.parametrize("fields, message", [
    ({"dataset.image_size": 8, "dataset.storage": "device"},
     "host-side crop runs on the streaming path only"),
    ({"dataset.image_size": 8}, r"has inputs of shape \(40,\), not images"),
    ({"dataset.storage": "stream", "noise.value_percent": 10.0},
     "config.noise.value_percent is 10.0: input noise"),
    ({"dataset.test_split": "validation"}, "config.dataset.test_split is 'validation'"),
])
def test_choices_the_data_cannot_take_are_refused_before_writing(mnist1d_dir, tmp_path,
                                                                 fields, message):
  workdir = tmp_path / "run"
  with pytest.raises(UserError, match=message):
    train.train_and_evaluate(tiny_run_config(mnist1d_dir, **fields), str(workdir))
  assert not workdir.exists() or not any(workdir.iterdir())


# --- images: device augmentation on streamed rows, ImageNet on mock data -----------------

def test_device_augmentations_see_the_same_streamed_images(tmp_path):
  """Crop, flip and RandAugment run inside jit on the streamed rows as on the gathered
  ones (keys fold in the example id): the same run, in memory and streamed."""
  data_dir = str(tmp_path / "tfds")
  summaries = {}
  for storage in ("device", "stream"):
    config = override(tiny_run_config(data_dir), **{
        "dataset.name": "synthetic_images/32px_1000", "dataset.storage": storage,
        "model.name": "cnn2d", "model.kwargs": {"channels": [8], "hidden_size": 0},
        "augmentation.name": "crop_flip", "augmentation.randaugment_num_ops": 1,
        "train.num_epochs": 2, "checkpoint.every_epochs": 0})
    summaries[storage] = train.train_and_evaluate(config, str(tmp_path / storage))
  for key in ("test_accuracy", "test_nll", "test_ece", "val_accuracy"):
    assert summaries["stream"][key] == pytest.approx(summaries["device"][key], rel=1e-6), key
  assert ([r["train_loss"] for r in records(str(tmp_path / "stream"))]
          == pytest.approx([r["train_loss"] for r in records(str(tmp_path / "device"))],
                           rel=1e-6))


def test_the_imagenet_resnets_have_torchvisions_shapes_and_parameter_counts():
  """The ImageNet stem (7x7 stride 2, 3x3 max-pool): torchvision's ResNet-18 and -34 have
  11,689,512 and 21,797,672 parameters with 1,000 classes (BatchNorm scale and bias
  included, running statistics not)."""
  for name, count in (("resnet18", 11_689_512), ("resnet34", 21_797_672)):
    model = models.get_model(name, num_classes=1000, stem="imagenet")
    variables = jax.eval_shape(lambda m=model: m.init(
        jax.random.PRNGKey(0), jnp.zeros((2, 224, 224, 3)), train=False))
    assert sum(np.prod(p.shape) for p in jax.tree.leaves(variables["params"])) == count
    logits = jax.eval_shape(lambda v, m=model: m.apply(v, jnp.zeros((2, 224, 224, 3)),
                                                       train=False), variables)
    assert logits.shape == (2, 1000)


def _mock_imagenet_run(config, workdir: str) -> dict:
  # A small CNN at 32 px on 48 mock images of random sizes: the real streaming path (data
  # sources, host crops, chunked rows), not the paper's scale or network (compiling a
  # ResNet-34 costs a minute here; its shapes are checked above).
  config = override(config, **{
      "dataset.image_size": 32, "dataset.read_threads": 2,
      "model.name": "cnn2d", "model.kwargs": {"channels": [8], "hidden_size": 0},
      "train.batch_size": 16, "train.eval_batch_size": 16, "train.steps_per_chunk": 2,
      "figures": False, "progress_bar": "off"})
  with tfds.testing.mock_data(num_examples=48, policy=tfds.testing.MockPolicy.USE_CODE):
    return train.train_and_evaluate(config, workdir)


def test_the_imagenet_coreset_pipeline_streams_on_mock_data(tmp_path):
  scores = override(coverage_centric_coreset.get_config("imagenet2012,scores"),
                    **{"train.num_epochs": 2})
  first = _mock_imagenet_run(scores, str(tmp_path / "scores"))
  assert first["num_train"] == 48 and first["num_test"] == 48
  with np.load(str(tmp_path / "scores" / "scores.npz")) as f:
    assert f["table.loss_by_epoch"].shape == (48, 2)  # kept per epoch, as the reference does
  coreset = override(coverage_centric_coreset.get_config("imagenet2012,ccs,90"), **{
      "train.num_train_steps": 3, "eval.every_steps": 0, "eval.every_epochs": 1,
      "method.scores_path": str(tmp_path / "scores")})
  second = _mock_imagenet_run(coreset, str(tmp_path / "coreset"))
  assert second["num_train_steps"] == 3 and second["num_train_examples_seen"] > 0


@pytest.mark.parametrize("config", [
    budgeted_importance_sampling.get_config("imagenet2012,p,ricap,0.5"),
    calib_prioritization.get_config("imagenet2012,mixup,30"),
], ids=["budgeted", "prioritization"])
def test_the_imagenet_configs_stream_on_mock_data(tmp_path, config):
  with config.unlocked():
    if config.method.name == "prioritization":
      config.method.warmup_epochs = 1
  result = _mock_imagenet_run(override(config, **{"train.num_epochs": 2}),
                              str(tmp_path / "run"))
  assert np.isfinite(result["test_nll"]) and result["num_epochs"] == 2
  chosen = [r["num_selected"] for r in records(str(tmp_path / "run"))]
  assert chosen[-1] < 48  # the method chose a subset in its last epoch


def test_imagenet_views_differ_by_epoch_and_eval_views_do_not(tmp_path):
  with tfds.testing.mock_data(num_examples=8, policy=tfds.testing.MockPolicy.USE_CODE):
    config = override(coverage_centric_coreset.get_config("imagenet2012,scores"),
                      **{"dataset.image_size": 16})
    dataset = train.load_data(config)
    data = evaluation.run_data(dataset, config)
    ids = np.arange(8, dtype=np.int32)
    assert data.read(ids, epoch=0).shape == (8, 16, 16, 3)
    np.testing.assert_array_equal(data.read(ids, epoch=0), data.read(ids[::-1], epoch=0)[::-1])
    assert not np.array_equal(data.read(ids, epoch=0), data.read(ids, epoch=1))
    np.testing.assert_array_equal(data.read(ids, epoch=None), data.read(ids, epoch=None))
