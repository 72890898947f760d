"""The README's code works: its own-loop example runs, and CI runs its test command."""

import contextlib
import io
import os
import re

README = os.path.join(os.path.dirname(__file__), os.pardir, "README.md")
CI = os.path.join(os.path.dirname(__file__), os.pardir, ".ci", "run")


def _readme() -> str:
  with open(README) as f:
    return f.read()


def test_own_loop_example_runs_and_reports_accuracy_and_ece():
  block = re.search(r"<!-- own-loop example: begin -->\n```python\n(.*?)```\n"
                    r"<!-- own-loop example: end -->", _readme(), re.S)
  assert block, "the README's own-loop example is missing its markers"
  out = io.StringIO()
  namespace = {"__name__": "readme_example"}
  with contextlib.redirect_stdout(out):
    exec(compile(block.group(1), "README.md", "exec"), namespace)  # pylint: disable=exec-used
  accuracy, ece = map(float, re.fullmatch(
      r"test accuracy ([\d.]+) %, ECE ([\d.]+) %\n", out.getvalue()).groups())
  assert 50.0 < accuracy <= 100.0  # ten classes: chance is 10 %
  assert 0.0 <= ece <= 100.0
  # The selector kept a 20 % subset of training ids, and the tracker wrote its table.
  assert len(namespace["ids"]) == 400 and namespace["ids"].max() < 2000
  assert float(namespace["table"].min()) >= 0.0 - 1e-6


def test_ci_runs_the_readme_test_command():
  commands = re.findall(r"^(pip install .*)$", _readme().split("```")[1], re.M)
  assert len(commands) == 2, commands
  with open(CI) as f:
    assert commands[1] in f.read()
  assert "configs/default.py" in commands[0]
