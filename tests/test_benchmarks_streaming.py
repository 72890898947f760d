"""``benchmarks/streaming.py`` still runs (tiny sizes) and reports both input paths."""

import csv

from benchmarks import streaming


def test_streaming_benchmark_runs_and_reports_both_paths(tmp_path, capsys):
  out_csv = tmp_path / "streaming.csv"
  argv = ["--datasets=synthetic_images/32px_1000", "--epochs=1", "--batch_size=64",
          "--read_threads=2", "--read_examples=256", f"--data_dir={tmp_path / 'tfds'}",
          f"--out={out_csv}"]
  (row,) = streaming.main(argv)
  out = capsys.readouterr().out
  assert "synthetic_images/32px_1000: cnn2d, input (32, 32, 3), 900 train / 100 val" in out
  header = out.split("\ndataset ")[1].splitlines()[0].split()
  assert header[:8] == ["model", "in", "memory", "stream", "host", "read", "stream", "/"]
  assert "bottleneck" in header and "target" in header
  assert out.rstrip().endswith("command: python -m benchmarks.streaming " + " ".join(argv))
  for key in ("in_memory_examples_per_s", "stream_examples_per_s",
              "host_read_examples_per_s", "stream_over_in_memory"):
    assert row[key] > 0, key
  assert row["bottleneck"] in ("host", "device")
  assert row["target_met"] in ("yes", "no", "n/a")
  # Both paths train on the same ids and the same inputs.
  assert abs(row["in_memory_test_accuracy"] - row["stream_test_accuracy"]) <= 0.01
  (written,) = list(csv.DictReader(out_csv.read_text().splitlines()))
  assert tuple(written) == streaming.COLUMNS
  assert float(written["stream_examples_per_s"]) > 0
