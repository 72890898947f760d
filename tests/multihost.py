"""Multi-host runs on one machine: ``python -m jaxsel.main`` processes joined by
``jax.distributed`` on localhost (gloo collectives on CPU), 2 CPU devices each."""

import os
import socket
import subprocess
import sys

from tests.equivalence import REPO, environment


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def config_file_of(tmp_path, reference_dir: str) -> str:
  """A config file whose config is the one ``reference_dir`` ran (its config.json)."""
  path = tmp_path / "same_config.py"
  path.write_text("import json\nimport ml_collections\n\n\ndef get_config():\n"
                  f"  with open({os.path.join(reference_dir, 'config.json')!r}) as f:\n"
                  "    return ml_collections.ConfigDict(json.load(f))\n")
  return str(path)


def launch(config_file: str, workdir: str, cache: str, port: int, logs: str):
  """Two processes of one run, 2 CPU devices each; their stdout/stderr go to ``logs``."""
  processes = []
  for process_id in range(2):
    out = open(f"{logs}.{process_id}.out", "w")
    err = open(f"{logs}.{process_id}.err", "w")
    processes.append(subprocess.Popen(
        [sys.executable, "-m", "jaxsel.main", f"--config={config_file}",
         f"--workdir={workdir}", f"--compilation_cache={cache}",
         f"--coordinator_address=localhost:{port}", "--num_processes=2",
         f"--process_id={process_id}", "--distributed_timeout=60"],
        cwd=REPO, env=environment(2), stdout=out, stderr=err))
  return processes


def run_lines(path: str) -> list[str]:
  """The run's lines on a process's stdout: gloo prints its connections there too, from
  several threads, so that its lines may come cut and interleaved."""
  with open(path) as f:
    return [line for line in f.read().splitlines()
            if "[Gloo]" not in line and "peer ranks" not in line and line.strip()]


def wait(processes, logs: str) -> None:
  """Waits for both; if one fails or hangs, the other is killed, not left waiting."""
  try:
    for process in processes:
      process.wait(timeout=300)
  finally:
    for process in processes:
      if process.poll() is None:
        process.kill()
  for process_id, process in enumerate(processes):
    with open(f"{logs}.{process_id}.err") as f:
      assert process.returncode == 0, f.read()[-4000:]
