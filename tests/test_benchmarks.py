"""The benchmarks still run (tiny sizes): they are not otherwise exercised by the tests."""

import sys

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
