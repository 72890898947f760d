"""The benchmarks still run (tiny sizes): they are not otherwise exercised by the tests."""

import sys

import pytest

from benchmarks import train_speed


def test_train_speed_runs_and_prints_the_ratio(monkeypatch, capsys):
  monkeypatch.setattr(sys, "argv", ["train_speed", "--cnn_batches=64", "--cnn_steps=2",
                                    "--repeats=1", "--skip_resnet"])
  train_speed.main()
  out = capsys.readouterr().out
  assert "batch  64  jaxsel loop: im2col is" in out
  assert "examples/s" in out


def test_selection_overhead_runs_and_prints_every_target(mnist1d_dir, tmp_path, capsys):
  from absl import flags  # pylint: disable=import-outside-toplevel
  from benchmarks import selection_overhead  # pylint: disable=import-outside-toplevel
  flags.FLAGS(["selection_overhead", "--dataset=mnist1d", f"--data_dir={mnist1d_dir}",
               "--epochs=4", "--warmup_epochs=2", f"--workdir={tmp_path}"])
  try:
    selection_overhead.main([])
  finally:
    flags.FLAGS.unparse_flags()
  out = capsys.readouterr().out
  for line in ("full_pass scoring pass / full-data epoch",
               "10 % epoch / full-data epoch, train_step scores",
               "compilations after the first selection epoch", "wall-clock speedup"):
    assert line in out
  # A new subset each selection epoch compiles nothing, with either score source.
  assert "compilations after the first selection epoch (train_step, full_pass)     0, 0" in out


def test_run_overhead_runs_and_prints_both_targets(mnist1d_dir, capsys):
  from benchmarks import run_overhead  # pylint: disable=import-outside-toplevel
  run_overhead.main(["--repeats=1", "--epochs=3", "--warmup_epochs=1",
                     "--dataset=mnist1d", f"--data_dir={mnist1d_dir}"])
  out = capsys.readouterr().out
  for part in run_overhead.PARTS:
    assert f"  {part} " in out
  assert "everything but training epochs and evaluation <= 35 % of the wall clock" in out
  assert "target: checkpoints <= 5 % of training epochs" in out
  # The three settings trained the same model: one test accuracy.
  assert len(out.split("test accuracy (identical in every run): [")[1].split("]")[0]
             .split(",")) == 1


def test_coreset_overhead_runs_and_prints_its_ratios(mnist1d_dir, capsys):
  from benchmarks import coreset_overhead  # pylint: disable=import-outside-toplevel
  coreset_overhead.main(["--epochs=2", "--dataset=mnist1d", f"--data_dir={mnist1d_dir}"])
  out = capsys.readouterr().out
  assert "epoch with training dynamics / plain epoch" in out
  assert "post-training scoring pass / training epoch" in out
  assert "CCS, β = 0.3, 50 strata" in out
  # The tracker does not change training: both runs end with the same test accuracy.
  plain, dynamics = out.split("changes no number): ")[1].split(", ")
  assert plain.split()[-1] == dynamics.split()[-1]


def test_budgeted_costs_runs_and_prints_its_ratios(mnist1d_dir, capsys):
  import math  # pylint: disable=import-outside-toplevel
  from benchmarks import budgeted_costs  # pylint: disable=import-outside-toplevel
  results = budgeted_costs.main(["--quick", "--dataset=mnist1d", "--tfds_name=mnist1d",
                                 f"--data_dir={mnist1d_dir}"])
  out = capsys.readouterr().out
  for line in ("full-data SGD", "budgeted unif-SGD", "selective backprop, β = 1/b − 1 = 2.33",
               "measured SB epoch / full-data epoch", "ideal s + f", "ideal 1/3 + f",
               "train step", "mixup (α 0.3)", "ricap (α 0.3)"):
    assert line in out
  # Signals get the mixings only: no image augmentation is timed (nor reported missing).
  assert "crop_flip" not in out and "randaugment" not in out
  numbers = [v for k, v in results.items() if not isinstance(v, dict)]
  numbers += [*results["epochs"].values(), *results["augmentation_ms"].values()]
  assert all(math.isfinite(v) and v > 0 for v in numbers)
  # Selective backprop at b = 0.3 back-propagates about 30 % after its priming epoch.
  assert 0.1 < results["sb_backward_fraction"] < 0.6


@pytest.mark.slow
def test_soak_resume_run_killed_while_checkpointing_ends_identical(mnist1d_dir, tmp_path,
                                                                    capsys):
  from benchmarks import soak_resume  # pylint: disable=import-outside-toplevel
  # One run, killed once as it writes a checkpoint (a kill that cannot come too late, as a
  # random one can), then resumed to the end.
  status = soak_resume.main(["--families=full_data", "--runs_per_family=1", "--epochs=3",
                             "--max_kills=1", "--kinds=checkpoint", "--skip_fallback",
                             f"--out={tmp_path / 'soak'}", f"--data_dir={mnist1d_dir}"])
  out = capsys.readouterr().out
  assert "full_data run 1/1: kill 1/1 (checkpoint" in out
  assert "\n1/1 identical\n" in out
  assert status == 0, out


def test_accelerator_runs_a_configuration_in_a_child_on_two_devices(monkeypatch, tmp_path,
                                                                     capsys):
  import csv  # pylint: disable=import-outside-toplevel
  from benchmarks import accelerator  # pylint: disable=import-outside-toplevel
  # The child sees two CPU devices (it inherits the environment); this process keeps one.
  monkeypatch.setenv("JAX_PLATFORMS", "cpu")
  monkeypatch.setenv("JAX_NUM_CPU_DEVICES", "2")
  out_csv = tmp_path / "accelerator.csv"
  argv = ["--models=cnn1d", "--batch_sizes=7", "--dtypes=float32", "--devices=2",
          "--steps=1", "--chunks=1", "--examples=32", f"--csv={out_csv}"]
  rows = accelerator.main(argv)
  out = capsys.readouterr().out
  assert out.startswith("backend cpu, device kind cpu, 2 local device(s)")
  assert "[1/1] cnn1d batch 7 float32 on 2 devices: compile " in out
  assert "chunks x steps  compile s  step ms  examples/s  peak MB" in out
  command = accelerator.command_line(argv)
  assert "JAX_NUM_CPU_DEVICES=2 python -m benchmarks.accelerator --models=cnn1d " in command
  assert out.rstrip().endswith(f"command: {command}")
  (row,) = list(csv.DictReader(out_csv.read_text().splitlines()))
  # 7 rows padded to 8 over 2 devices; the compiled-ahead program is the one that ran; CPU
  # has no peak-memory counter; no single-device row, so no efficiency.
  assert (row["devices"], row["rows_per_device"], row["recompiles"]) == ("2", "4", "0")
  assert row["peak_bytes"] == "" and row["scaling_efficiency"] == "" and not row["error"]
  assert float(row["examples_per_s"]) > 0 and rows[0]["compile_s"] > 0
  # Efficiency: throughput(D) / (D x throughput(1)).
  fake = [dict(model="m", batch_size=8, dtype="float32", devices=d, examples_per_s=e)
          for d, e in ((1, 100.0), (4, 200.0))]
  accelerator.add_scaling_efficiency(fake)
  assert [r["scaling_efficiency"] for r in fake] == [1.0, 0.5]
