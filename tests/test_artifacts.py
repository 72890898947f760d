"""Tests for jaxsel.artifacts: score files round trip, refuse foreign data, aggregate."""

import json
import os

import numpy as np
import pytest

from jaxsel import artifacts
from jaxsel.config_errors import UserError

IDS = np.array([2, 5, 7, 11], np.int32)
FINGERPRINT = "fp-mnist1d-abc123"
CONFIG = {"method": "calibrated", "train": {"num_epochs": 3, "seed": 0}}


def make_tables() -> dict:
  """One table of every stored dtype, [N] and [N, E]; N = 4 rows for IDS."""
  return {
      "entropy": np.array([0.25, 0.5, 0.75, 1.0], np.float32),
      "trajectory": np.array([[0.9, 0.6, 0.3],
                              [0.8, 0.7, 0.5],
                              [1.0, 0.2, 0.1],
                              [0.4, 0.4, 0.4]], np.float32),
      "forgets": np.array([0, 3, 1, 7], np.int32),
      "learned": np.array([True, False, True, True]),
      "bins": np.array([[0, 255], [1, 2], [3, 4], [200, 9]], np.uint8),
  }


def make(tables=None, *, ids=IDS, fingerprint=FINGERPRINT, seeds=(0,), num_epochs=3,
         **fields) -> artifacts.ScoreFile:
  return artifacts.ScoreFile(
      example_ids=ids, tables=make_tables() if tables is None else tables,
      fingerprint=fingerprint, dataset_name="mnist1d", num_epochs=num_epochs,
      seeds=tuple(seeds), config=CONFIG, **fields)


# ----------------------------------------------------------------------------- round trip


def test_round_trip_keeps_every_table_and_metadata_field(tmp_path):
  original = make(aggregation={"how": "mean", "count": 2}, seeds=(3, 4),
                  extra={"note": "target run", "checkpoint_dir": "/runs/t/ckpt"})
  path = artifacts.save(str(tmp_path / "run.npz"), original)
  assert path == str(tmp_path / "run.npz")
  loaded = artifacts.load(path)

  assert loaded.example_ids.dtype == np.int32
  np.testing.assert_array_equal(loaded.example_ids, [2, 5, 7, 11])
  assert sorted(loaded.tables) == ["bins", "entropy", "forgets", "learned", "trajectory"]
  for name, values in make_tables().items():
    assert loaded.table(name).dtype == values.dtype, name
    assert loaded.table(name).shape == values.shape, name
    np.testing.assert_array_equal(loaded.table(name), values)
  assert loaded.fingerprint == "fp-mnist1d-abc123"
  assert loaded.dataset_name == "mnist1d"
  assert loaded.num_epochs == 3
  assert loaded.seeds == (3, 4)
  assert loaded.config == {"method": "calibrated", "train": {"num_epochs": 3, "seed": 0}}
  assert loaded.aggregation == {"how": "mean", "count": 2}
  assert loaded.extra == {"note": "target run", "checkpoint_dir": "/runs/t/ckpt"}


def test_defaults_round_trip_as_null_and_empty(tmp_path):
  loaded = artifacts.load(artifacts.save(str(tmp_path), make()))
  assert loaded.aggregation is None
  assert loaded.extra == {}


def test_file_reads_with_plain_numpy(tmp_path):
  path = artifacts.save(str(tmp_path), make(seeds=(7,)))
  with np.load(path, allow_pickle=False) as f:
    assert sorted(f.files) == ["example_ids", "metadata", "table.bins", "table.entropy",
                               "table.forgets", "table.learned", "table.trajectory"]
    assert f["metadata"].shape == ()
    meta = json.loads(str(f["metadata"]))
    np.testing.assert_array_equal(f["example_ids"], [2, 5, 7, 11])
    np.testing.assert_array_equal(f["table.forgets"], [0, 3, 1, 7])
    np.testing.assert_allclose(f["table.trajectory"][:, 1], [0.6, 0.7, 0.2, 0.4])
  assert meta == {
      "format_version": 1, "fingerprint": "fp-mnist1d-abc123", "dataset_name": "mnist1d",
      "num_epochs": 3, "seeds": [7], "aggregation": None, "config": CONFIG, "extra": {},
  }


def test_empty_file_round_trips(tmp_path):
  empty = make({"entropy": np.zeros(0, np.float32)}, ids=np.zeros(0, np.int32))
  loaded = artifacts.load(artifacts.save(str(tmp_path), empty))
  assert loaded.table("entropy").shape == (0,)
  assert loaded.for_ids("entropy", []).shape == (0,)


# --------------------------------------------------------------------------------- access


def test_table_names_missing_and_available():
  with pytest.raises(ValueError, match=r"no table 'margin'; available: bins, entropy, "
                     r"forgets, learned, trajectory"):
    make().table("margin")


def test_column_of_flat_and_per_epoch_tables():
  score_file = make()
  # A [N] table is the same at every epoch.
  np.testing.assert_array_equal(score_file.column("entropy", 0), [0.25, 0.5, 0.75, 1.0])
  np.testing.assert_array_equal(score_file.column("entropy", 10), [0.25, 0.5, 0.75, 1.0])
  np.testing.assert_array_equal(score_file.column("trajectory", 0), np.float32(
      [0.9, 0.8, 1.0, 0.4]))
  np.testing.assert_array_equal(score_file.column("trajectory", 1), np.float32(
      [0.6, 0.7, 0.2, 0.4]))
  # Past the last of E = 3 columns: the last column, for epoch 2 and beyond.
  for epoch in (2, 3, 50):
    np.testing.assert_array_equal(score_file.column("trajectory", epoch), np.float32(
        [0.3, 0.5, 0.1, 0.4]))
  np.testing.assert_array_equal(score_file.column("bins", 9), [255, 2, 4, 9])
  with pytest.raises(ValueError, match="epoch must be >= 0"):
    score_file.column("trajectory", -1)


def test_for_ids_follows_the_requested_order():
  score_file = make()
  np.testing.assert_array_equal(score_file.for_ids("forgets", [11, 2, 7]), [7, 0, 1])
  np.testing.assert_array_equal(score_file.for_ids("forgets", [5, 5]), [3, 3])
  np.testing.assert_array_equal(score_file.for_ids("bins", np.array([7, 2])),
                                [[3, 4], [0, 255]])
  # Any shape of ids: the result has ids.shape + the table's trailing shape.
  np.testing.assert_array_equal(score_file.for_ids("entropy", [[11, 5], [2, 7]]),
                                np.float32([[1.0, 0.5], [0.25, 0.75]]))


def test_for_ids_refuses_ids_the_file_lacks():
  # 3 lies between held ids, 0 below all, 12 above all: all three must be caught.
  with pytest.raises(ValueError, match=r"no rows for ids \[0, 3, 12\] \(3 in all\); it "
                     r"covers 4 examples"):
    make().for_ids("entropy", [5, 12, 3, 0, 11])
  with pytest.raises(ValueError, match=r"ids must be integers"):
    make().for_ids("entropy", [5.0])


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize("tables, message", [
    ({"bad.name": np.zeros(4, np.float32)}, r"table name 'bad.name' must be"),
    ({"": np.zeros(4, np.float32)}, r"table name '' must be"),
    ({"entropy": np.zeros(3, np.float32)}, r"table 'entropy' has shape \(3,\); expected "
     r"\[N\] or \[N, E\] with N = 4"),
    ({"cube": np.zeros((4, 2, 2), np.float32)}, r"table 'cube' has shape \(4, 2, 2\)"),
    ({"wide": np.zeros(4, np.float64)}, r"table 'wide' has dtype float64; allowed: "
     r"float32, int32, uint8, bool"),
    ({"listed": [0.0, 1.0, 2.0, 3.0]}, r"table 'listed' must be a numpy array"),
])
def test_validate_names_the_bad_table(tables, message):
  with pytest.raises(ValueError, match=message):
    artifacts.validate(make(tables))


@pytest.mark.parametrize("fields, message", [
    ({"ids": np.array([2, 7, 5, 11])}, "example_ids must be sorted and unique"),
    ({"ids": np.array([2, 5, 5, 11])}, "example_ids must be sorted and unique"),
    ({"ids": np.array([2.0, 5.0, 7.0, 11.0])}, "example_ids must be integers"),
    ({"ids": np.array([2, 5, 7, 2**40])}, "example_ids must fit in int32"),
    ({"num_epochs": -1}, "num_epochs must be an int >= 0"),
    ({"seeds": (0, "1")}, "seeds must be ints"),
    ({"aggregation": {"how": "median", "count": 2}}, "aggregation must be None or"),
    ({"extra": {"array": np.zeros(2)}}, "config and extra must be JSON-serializable"),
])
def test_validate_names_the_bad_field(fields, message):
  with pytest.raises(ValueError, match=message):
    artifacts.validate(make(**fields))


def test_save_validates_before_writing(tmp_path):
  with pytest.raises(ValueError, match="table 'wide' has dtype float64"):
    artifacts.save(str(tmp_path), make({"wide": np.zeros(4)}))
  assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------- save / load


def test_directory_path_means_scores_npz(tmp_path):
  # A run directory that does not exist yet is created.
  run_dir = tmp_path / "runs" / "seed0"
  path = artifacts.save(str(run_dir), make())
  assert path == str(run_dir / "scores.npz")
  assert os.listdir(run_dir) == ["scores.npz"]
  np.testing.assert_array_equal(artifacts.load(str(run_dir)).table("forgets"), [0, 3, 1, 7])


def test_save_leaves_no_temp_file_and_replaces_an_old_file(tmp_path):
  artifacts.save(str(tmp_path), make(seeds=(1,)))
  artifacts.save(str(tmp_path), make(seeds=(2,)))
  assert os.listdir(tmp_path) == ["scores.npz"]
  assert artifacts.load(str(tmp_path)).seeds == (2,)


def test_failed_write_leaves_the_existing_file_untouched(tmp_path, monkeypatch):
  path = artifacts.save(str(tmp_path), make(seeds=(1,)))
  before = open(path, "rb").read()

  def crash_midway(file, **arrays):
    file.write(b"PK\x03\x04 half an archive")
    raise OSError("disk full")

  monkeypatch.setattr(np, "savez", crash_midway)
  with pytest.raises(OSError, match="disk full"):
    artifacts.save(str(tmp_path), make(seeds=(2,)))
  monkeypatch.undo()
  assert os.listdir(tmp_path) == ["scores.npz"]
  assert open(path, "rb").read() == before
  assert artifacts.load(path).seeds == (1,)


def test_load_checks_pass_for_the_same_data(tmp_path):
  artifacts.save(str(tmp_path), make())
  # The run may list its ids in any order.
  loaded = artifacts.load(str(tmp_path), fingerprint=FINGERPRINT,
                          example_ids=np.array([11, 2, 7, 5]),
                          required=("entropy", "trajectory"))
  np.testing.assert_array_equal(loaded.for_ids("forgets", [11, 2, 7, 5]), [7, 0, 1, 3])


def test_load_refuses_another_fingerprint(tmp_path):
  artifacts.save(str(tmp_path), make())
  with pytest.raises(UserError) as info:
    artifacts.load(str(tmp_path), fingerprint="fp-other-999", field="target.path")
  message = str(info.value)
  assert message.startswith(f"config.target.path '{tmp_path / 'scores.npz'}'")
  assert "dataset 'mnist1d' with fingerprint fp-mnist1d-abc123" in message
  assert "this run's data has fingerprint fp-other-999" in message


def test_load_refuses_other_example_ids(tmp_path):
  artifacts.save(str(tmp_path), make())
  with pytest.raises(UserError) as info:
    artifacts.load(str(tmp_path), fingerprint=FINGERPRINT, example_ids=[2, 5, 8, 11, 13],
                   field="coreset.scores_path")
  message = str(info.value)
  assert message.startswith("config.coreset.scores_path")
  assert "dataset 'mnist1d' with fingerprint fp-mnist1d-abc123" in message
  assert "the file holds 4 ids, this run 5" in message
  assert "ids the file lacks: [8, 13] (2 in all)" in message
  assert "file ids the run lacks: [7] (1 in all)" in message


def test_load_refuses_missing_required_tables(tmp_path):
  artifacts.save(str(tmp_path), make({"entropy": np.ones(4, np.float32)}))
  with pytest.raises(UserError, match=r"config\.target\.path .* lacks the required "
                     r"tables forgets, margin; available: entropy"):
    artifacts.load(str(tmp_path), required=("entropy", "forgets", "margin"),
                   field="target.path")


def test_load_refuses_a_missing_file(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"config\.target\.path '.*nowhere/scores\."
                     r"npz' does not exist"):
    artifacts.load(str(tmp_path / "nowhere"), field="target.path")
  with pytest.raises(FileNotFoundError, match=r"config\.path '.*absent\.npz'") as info:
    artifacts.load(str(tmp_path / "absent.npz"))
  # A user error too, so that the command lines print it in one line.
  assert isinstance(info.value, UserError)


def test_load_refuses_an_unknown_format_version(tmp_path):
  path = artifacts.save(str(tmp_path), make())
  with np.load(path) as f:
    arrays = dict(f)
  meta = json.loads(str(arrays["metadata"]))
  meta["format_version"] = 2
  arrays["metadata"] = np.array(json.dumps(meta))
  np.savez(path, **arrays)
  with pytest.raises(UserError, match=r"config\.path .* has format_version 2; this "
                     r"jaxsel reads version 1"):
    artifacts.load(path)


def test_load_refuses_an_npz_that_is_not_a_score_file(tmp_path):
  path = str(tmp_path / "target.npz")
  np.savez(path, trajectory=np.zeros((4, 3), np.float32))
  with pytest.raises(UserError, match=r"config\.target\.path .* is not a score file"):
    artifacts.load(path, field="target.path")


# ------------------------------------------------------------------------------ aggregate


def three_runs() -> list:
  """Three seeds' files; 'trajectory' is in the first two only, 'only_a' in the first."""
  return [
      make({"entropy": np.float32([0.1, 0.2, 0.3, 0.4]),
            "forgets": np.int32([0, 1, 2, 3]),
            "learned": np.array([True, False, True, False]),
            "trajectory": np.float32([[1, 2], [3, 4], [5, 6], [7, 8]]),
            "only_a": np.zeros(4, np.uint8)}, seeds=(0,), extra={"run": "a"}),
      make({"entropy": np.float32([0.3, 0.2, 0.1, 0.0]),
            "forgets": np.int32([1, 1, 0, 5]),
            "learned": np.array([True, True, False, False]),
            "trajectory": np.float32([[3, 2], [1, 0], [5, 8], [9, 4]])}, seeds=(1,)),
      make({"entropy": np.float32([0.2, 0.5, 0.8, 0.2]),
            "forgets": np.int32([2, 0, 1, 1]),
            "learned": np.array([True, False, False, False])}, seeds=(2,)),
  ]


def test_aggregate_mean():
  mean = artifacts.aggregate(three_runs())
  # Tables present in every file only; the others are dropped and recorded.
  assert sorted(mean.tables) == ["entropy", "forgets", "learned"]
  assert mean.extra == {"run": "a", "dropped_tables": ["only_a", "trajectory"]}
  # entropy: (0.1+0.3+0.2)/3, (0.2+0.2+0.5)/3, (0.3+0.1+0.8)/3, (0.4+0.0+0.2)/3
  np.testing.assert_allclose(mean.table("entropy"), [0.2, 0.3, 0.4, 0.2], rtol=1e-6)
  # forgets: 3/3, 2/3, 3/3, 9/3; learned: the fraction of runs, 3/3, 1/3, 1/3, 0/3.
  np.testing.assert_allclose(mean.table("forgets"), [1.0, 2 / 3, 1.0, 3.0], rtol=1e-6)
  np.testing.assert_allclose(mean.table("learned"), [1.0, 1 / 3, 1 / 3, 0.0], rtol=1e-6)
  for name in mean.tables:
    assert mean.table(name).dtype == np.float32, name
  assert mean.seeds == (0, 1, 2)
  assert mean.aggregation == {"how": "mean", "count": 3}
  assert mean.config == CONFIG
  assert mean.fingerprint == FINGERPRINT and mean.num_epochs == 3
  np.testing.assert_array_equal(mean.example_ids, IDS)


def test_aggregate_sum_keeps_counts_integral():
  total = artifacts.aggregate(three_runs(), how="sum")
  assert total.table("forgets").dtype == np.int32
  np.testing.assert_array_equal(total.table("forgets"), [3, 2, 3, 9])
  assert total.table("learned").dtype == np.int32
  np.testing.assert_array_equal(total.table("learned"), [3, 1, 1, 0])
  assert total.table("entropy").dtype == np.float32
  np.testing.assert_allclose(total.table("entropy"), [0.6, 0.9, 1.2, 0.6], rtol=1e-6)
  assert total.aggregation == {"how": "sum", "count": 3}


def test_aggregate_per_epoch_tables_elementwise():
  mean = artifacts.aggregate(three_runs()[:2])
  assert "trajectory" in mean.tables and "dropped_tables" in mean.extra
  # [[1,2],[3,4],[5,6],[7,8]] and [[3,2],[1,0],[5,8],[9,4]], halved sums.
  np.testing.assert_array_equal(mean.table("trajectory"),
                                np.float32([[2, 2], [2, 2], [5, 7], [8, 6]]))
  assert mean.column("trajectory", 5).tolist() == [2, 2, 7, 6]


def test_aggregate_of_one_file_is_that_file_relabelled():
  only = artifacts.aggregate(three_runs()[2:], how="sum")
  np.testing.assert_allclose(only.table("entropy"), [0.2, 0.5, 0.8, 0.2])
  assert only.aggregation == {"how": "sum", "count": 1}
  assert "dropped_tables" not in only.extra


def test_aggregate_result_saves_and_loads(tmp_path):
  artifacts.save(str(tmp_path), artifacts.aggregate(three_runs(), how="sum"))
  loaded = artifacts.load(str(tmp_path))
  assert loaded.seeds == (0, 1, 2)
  assert loaded.aggregation == {"how": "sum", "count": 3}
  np.testing.assert_array_equal(loaded.table("forgets"), [3, 2, 3, 9])


@pytest.mark.parametrize("second, message", [
    (make(fingerprint="fp-other"), r"score file 1 differs from score file 0 in "
     r"fingerprint fp-other vs fp-mnist1d-abc123"),
    (make(ids=np.array([2, 5, 7, 12], np.int32)), r"score file 1 differs from score file 0"
     r" in example_ids"),
    (make(num_epochs=5), r"score file 1 differs from score file 0 in num_epochs 5 vs 3"),
    (make({"entropy": np.zeros((4, 2), np.float32)}),
     r"table 'entropy': score file 1 has shape \(4, 2\), score file 0 \(4,\)"),
])
def test_aggregate_refuses_mismatched_files(second, message):
  with pytest.raises(ValueError, match=message):
    artifacts.aggregate([make(), second])


def test_aggregate_refuses_bad_how_and_empty_lists():
  with pytest.raises(ValueError, match=r"how='median'; valid: mean, sum"):
    artifacts.aggregate([make()], how="median")
  with pytest.raises(ValueError, match="empty list"):
    artifacts.aggregate([])


def test_aggregate_sum_refuses_int32_overflow():
  big = make({"forgets": np.full(4, 2**30 + 1, np.int32)})
  with pytest.raises(ValueError, match="table 'forgets': its sum overflows int32"):
    artifacts.aggregate([big, big], how="sum")


def test_load_many_loads_checks_and_aggregates(tmp_path):
  paths = [artifacts.save(str(tmp_path / f"seed{i}"), f)
           for i, f in enumerate(three_runs())]
  mean = artifacts.load_many(paths, fingerprint=FINGERPRINT, example_ids=IDS,
                             required=("entropy",), field="target.paths")
  np.testing.assert_allclose(mean.table("entropy"), [0.2, 0.3, 0.4, 0.2], rtol=1e-6)
  assert mean.seeds == (0, 1, 2)
  total = artifacts.load_many([str(tmp_path / "seed0"), str(tmp_path / "seed1")],
                              how="sum")
  np.testing.assert_array_equal(total.table("trajectory"),
                                np.float32([[4, 4], [4, 4], [10, 14], [16, 12]]))


def test_load_many_names_the_refused_path(tmp_path):
  good = artifacts.save(str(tmp_path / "a"), make())
  other = artifacts.save(str(tmp_path / "b"), make(fingerprint="fp-other"))
  # With the run's fingerprint, load refuses the foreign file and names the field.
  with pytest.raises(UserError, match=r"config\.target\.paths '.*b/scores\.npz' was made"):
    artifacts.load_many([good, other], fingerprint=FINGERPRINT, field="target.paths")
  # Without it, aggregation still refuses, naming the differing file by field and path.
  with pytest.raises(UserError, match=r"config\.target\.paths '.*b/scores\.npz' differs "
                     r"from config\.target\.paths '.*a/scores\.npz' in fingerprint"):
    artifacts.load_many([good, other], field="target.paths")
  with pytest.raises(UserError, match=r"config\.target\.paths lists no score files"):
    artifacts.load_many([], field="target.paths")
  with pytest.raises(UserError, match=r"^--scores lists no score files$"):
    artifacts.load_many([], source="--scores")


def test_load_many_refuses_files_that_do_not_combine(tmp_path):
  short = artifacts.save(str(tmp_path / "a"), make())
  longer = artifacts.save(str(tmp_path / "b"), make(num_epochs=5))
  with pytest.raises(UserError, match=r"^cannot aggregate: config\.method\.scores_path "
                     r"'.*b/scores\.npz' differs from .* in num_epochs 5 vs 3$"):
    artifacts.load_many([short, longer], field="method.scores_path")
  # An unknown ``how`` is the calling code's mistake: a plain ValueError, before any read.
  with pytest.raises(ValueError, match="how='median'") as info:
    artifacts.load_many([str(tmp_path / "absent")], how="median")
  assert not isinstance(info.value, UserError)


# ------------------------------------------------------------------------ malformed files
#
# Each builder writes one kind of broken file under tmp_path and returns the path to load.


def _saved(tmp_path) -> str:
  return artifacts.save(str(tmp_path / "scores.npz"), make())


def _bytes_edited(edit):
  def build(tmp_path):
    path = _saved(tmp_path)
    with open(path, "rb") as f:
      data = f.read()
    with open(path, "wb") as f:
      f.write(edit(data))
    return path
  return build


def _arrays_edited(edit):
  """The saved file rewritten with ``edit(arrays)`` (a dict key -> array) as its arrays."""
  def build(tmp_path):
    path = _saved(tmp_path)
    with np.load(path) as f:
      arrays = dict(f)
    with open(path, "wb") as f:
      np.savez(f, **edit(arrays))
    return path
  return build


def _metadata_text(text: str):
  return _arrays_edited(lambda arrays: {**arrays, "metadata": np.array(text)})


def _metadata_edited(**changes):
  """The saved file with metadata fields replaced; a value of ``...`` deletes the field."""
  def edit(arrays):
    meta = json.loads(str(arrays["metadata"]))
    meta.update(changes)
    meta = {key: value for key, value in meta.items() if value is not ...}
    return {**arrays, "metadata": np.array(json.dumps(meta))}
  return _arrays_edited(edit)


def _without(key: str):
  return _arrays_edited(lambda arrays: {k: v for k, v in arrays.items() if k != key})


def _replaced(key: str, value):
  return _arrays_edited(lambda arrays: {**arrays, key: value})


def _absent(tmp_path) -> str:
  return str(tmp_path / "absent.npz")


def _empty_directory(tmp_path) -> str:
  (tmp_path / "run").mkdir()
  return str(tmp_path / "run")


def _plain_npy(tmp_path) -> str:
  path = str(tmp_path / "scores.npz")
  with open(path, "wb") as f:
    np.save(f, np.zeros(4, np.float32))  # a .npy array, not an .npz archive
  return path


# The stored bytes of make()'s entropy table, to corrupt one member without touching the
# archive's directory (np.savez does not compress, so they appear as they are).
_ENTROPY_BYTES = np.float32([0.25, 0.5, 0.75, 1.0]).tobytes()


MALFORMED = {
    "missing": (_absent, "does not exist"),
    "directory_without_scores": (_empty_directory, "is a directory without scores.npz"),
    "garbage": (_bytes_edited(lambda data: b"\x00\xffnot a score file" * 20),
                "is not an .npz archive"),
    "npy_not_npz": (_plain_npy, "is not an .npz archive"),
    "empty": (_bytes_edited(lambda data: b""), "is empty (0 bytes)"),
    "truncated_at_half": (_bytes_edited(lambda data: data[:len(data) // 2]),
                          "is damaged or truncated"),
    "corrupt_member": (_bytes_edited(lambda data: data.replace(_ENTROPY_BYTES,
                                                               b"\x01" * 16)),
                       "is damaged: its array 'table.entropy' cannot be read (BadZipFile"),
    "metadata_not_json": (_metadata_text("{format_version: 1"), "its metadata is not JSON"),
    "metadata_a_json_list": (_metadata_text("[1, 2]"),
                             "its metadata must be a JSON object, got a JSON list"),
    "metadata_not_a_string": (_replaced("metadata", np.zeros(3, np.int32)),
                              "its metadata must be a 0-d string holding a JSON object, "
                              "got an array of dtype int32 and shape (3,)"),
    "metadata_lacks_keys": (_metadata_edited(fingerprint=..., seeds=...),
                            "is malformed: its metadata lacks fingerprint, seeds"),
    "metadata_lacks_version": (_metadata_edited(format_version=...),
                               "its metadata lacks format_version"),
    "seeds_not_a_list": (_metadata_edited(seeds=3), "seeds must be a list of ints, got 3"),
    "fingerprint_not_a_string": (_metadata_edited(fingerprint=7),
                                 "is malformed: fingerprint must be a str, got int"),
    "format_version_2": (_metadata_edited(format_version=2),
                         "has format_version 2; this jaxsel reads version 1"),
    "format_version_true": (_metadata_edited(format_version=True),
                            "has format_version True"),
    "no_example_ids": (_without("example_ids"),
                       "is not a score file: it lacks 'example_ids' (its arrays: "),
    "no_metadata": (_without("metadata"), "is not a score file: it lacks 'metadata'"),
    "table_of_float64": (_replaced("table.entropy", np.zeros(4, np.float64)),
                         "is malformed: table 'entropy' has dtype float64"),
    "table_of_wrong_length": (_replaced("table.entropy", np.zeros(3, np.float32)),
                              "is malformed: table 'entropy' has shape (3,); expected [N]"),
    "ids_unsorted": (_replaced("example_ids", np.int32([5, 2, 7, 11])),
                     "is malformed: example_ids must be sorted and unique"),
    "pickled_table": (_replaced("table.entropy", np.array([{"a": 1}] * 4, dtype=object)),
                      "is damaged: its array 'table.entropy' cannot be read (ValueError: "),
    "pickled_metadata": (_replaced("metadata", np.array({"format_version": 1})),
                         "its array 'metadata' cannot be read"),
}


@pytest.mark.parametrize("source", ["config", "flag"])
@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_load_refuses_a_malformed_file_in_one_line_naming_it(tmp_path, case, source):
  build, mention = MALFORMED[case]
  path = build(tmp_path)
  kwargs = ({"field": "method.target.path"} if source == "config"
            else {"source": "--scores"})
  with pytest.raises(UserError) as info:
    artifacts.load(path, fingerprint=FINGERPRINT, example_ids=IDS, **kwargs)
  message = str(info.value)
  assert "\n" not in message, message
  assert mention in message, message
  # Where the path came from, then the path itself.
  named_by = "config.method.target.path" if source == "config" else "--scores"
  assert message.startswith(f"{named_by} '{path}"), message
  assert "config." not in message or source == "config", message


def test_a_missing_file_is_still_a_file_not_found_error(tmp_path):
  with pytest.raises(FileNotFoundError) as info:
    artifacts.load(str(tmp_path / "run"), field="removal.ordering_path")
  assert isinstance(info.value, UserError)
  assert str(info.value) == (
      f"config.removal.ordering_path '{tmp_path / 'run' / 'scores.npz'}' does not exist; "
      "write it with a run that saves scores, or point config.removal.ordering_path at one")


def _load_or_refuse(path: str, data: bytes):
  """The ScoreFile read from ``data`` written at ``path``, or None when load refuses it
  (after checking that the refusal is one line naming the field and the file)."""
  with open(path, "wb") as f:
    f.write(data)
  try:
    # Requiring every table: a corrupted member name must not just drop a table.
    return artifacts.load(path, field="target.path", required=tuple(make_tables()))
  except UserError as e:
    assert "\n" not in str(e) and str(e).startswith(f"config.target.path '{path}'"), e
    return None


def test_every_cut_and_every_overwritten_stretch_is_refused_or_harmless(tmp_path):
  path = _saved(tmp_path)
  with open(path, "rb") as f:
    good = f.read()
  broken = str(tmp_path / "broken.npz")
  # A cut anywhere loses the end of the archive (its directory): always refused.
  for n in np.linspace(0, len(good) - 1, 64).astype(int):
    assert _load_or_refuse(broken, good[:n]) is None, n
  # 8 random bytes over 64 stretches spread over headers, array data and the directory:
  # refused, or they hit bytes no reader uses (CRCs guard the arrays) and change nothing.
  rng = np.random.default_rng(0)
  refused = 0
  for start in np.linspace(0, len(good) - 8, 64).astype(int):
    loaded = _load_or_refuse(broken, good[:start] + rng.bytes(8) + good[start + 8:])
    if loaded is None:
      refused += 1
      continue
    for name, values in make_tables().items():
      np.testing.assert_array_equal(loaded.table(name), values)
    np.testing.assert_array_equal(loaded.example_ids, IDS)
  assert refused >= 48, refused
