"""The soak's corrupt-checkpoint fallback check (see ``benchmarks/soak_resume.py``).

A run is killed once two checkpoints exist; one bit of the state data of its latest
checkpoint is flipped, at the first place that changes what the checkpoint reads back;
the run is resumed. Expected: one warning on stderr saying the checkpoint was set aside,
the corrupt file moved out of ``checkpoints/`` (not deleted), the run resumed from the
checkpoint before it, and results identical to the reference's.
"""

import hashlib
import os
import warnings

import numpy as np

from benchmarks import run_comparison
from benchmarks import soak_processes
from benchmarks.soak_processes import Family, Soak


def flip_bit(path: str, offset: int) -> None:
  with open(path, "r+b") as f:
    f.seek(offset)
    byte = f.read(1)[0]
    f.seek(offset)
    f.write(bytes([byte ^ 0x10]))


def _digest(path: str) -> str:
  with open(path, "rb") as f:
    return hashlib.sha256(f.read()).hexdigest()


def _read_state(checkpoint_dir: str):
  """The saved state item as host arrays (orbax, no template), or the error reading it."""
  import jax  # pylint: disable=import-outside-toplevel
  import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
  try:
    # Restoring without a template warns that it reads the shardings from the files.
    with warnings.catch_warnings(), ocp.PyTreeCheckpointer() as checkpointer:
      warnings.simplefilter("ignore")
      tree = checkpointer.restore(os.path.join(checkpoint_dir, "state"))
    return {jax.tree_util.keystr(path): np.asarray(leaf)
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}
  except Exception as e:  # pylint: disable=broad-except
    return " ".join(str(e).split())[:200] or type(e).__name__


def _flip_effect(before: dict, after) -> str:
  """What a flip did to the read-back state ('' if nothing)."""
  if isinstance(after, str):
    return f"the checkpoint no longer reads ({after})"
  changed = [k for k in before
             if k not in after or not np.array_equal(before[k], after[k], equal_nan=True)]
  if not changed:
    return ""
  return f"changes {changed[0]}" + (f" and {len(changed) - 1} more" if changed[1:] else "")


def corrupt_checkpoint(checkpoint_dir: str) -> dict:
  """Flips one bit of the state's OCDBT data (files under ``d/``), largest file first,
  middle byte first, until the flip changes what the checkpoint reads back (a value, or
  whether it reads at all): the data is zstd-compressed, and a flip in a part of a frame
  that decodes to the same values would test nothing."""
  data_files = sorted((os.path.join(d, n) for d, _, names in
                       os.walk(os.path.join(checkpoint_dir, "state"))
                       for n in names if os.path.basename(d) == "d"),
                      key=os.path.getsize, reverse=True)
  before = _read_state(checkpoint_dir)
  if isinstance(before, str):
    raise RuntimeError(f"{checkpoint_dir} does not read before any flip: {before}")
  for path in data_files[:3]:
    size = os.path.getsize(path)
    for fraction in (1 / 2, 1 / 3, 2 / 3, 1 / 4, 3 / 4, 1 / 8, 7 / 8):
      offset = int(size * fraction)
      flip_bit(path, offset)
      effect = _flip_effect(before, _read_state(checkpoint_dir))
      if effect:
        return {"file": path, "size": size, "offset": offset, "effect": effect,
                "digest": _digest(path)}
      flip_bit(path, offset)  # no effect: put it back, try another place
  raise RuntimeError(f"no single-bit flip in the data of {checkpoint_dir} changed it")


def _files_with_digest(workdir: str, digest: str) -> list[str]:
  return [os.path.relpath(os.path.join(directory, n), workdir)
          for directory, _, names in os.walk(workdir) for n in names
          if _digest(os.path.join(directory, n)) == digest]


def _where_set_aside(workdir: str, digest: str, expected: str) -> tuple[str | None, str]:
  """Where the corrupt file (known by its digest) is now, and what is wrong with that
  ('' when it is out of ``checkpoints/``, moved and not deleted)."""
  holders = _files_with_digest(workdir, digest)
  if expected in holders:
    return expected, ""
  moved = [h for h in holders if not h.startswith("checkpoints" + os.sep)]
  if moved:
    print(f"  fallback: the corrupt file is at {moved[0]}, not {expected}", flush=True)
    return moved[0], ""
  return None, ("the corrupt checkpoint was not set aside ("
                + (f"still at {holders[0]}" if holders else
                   "its file is gone: deleted or overwritten")
                + f"; looked for {expected} and anywhere outside checkpoints/)")


def fallback(soak: Soak, ref: dict, *, name: str, family: Family) -> dict:
  """Kill a run of ``family`` (named ``name``) once two checkpoints exist, corrupt the
  latest, resume, compare with ``ref``, its reference: see the module doc."""
  workdir = soak_processes.fresh_dir(os.path.join(soak.out, "fallback", "run"))
  argv = soak_processes.command(family, workdir, soak, {})
  record = {"key": "fallback", "family": name, "workdir": workdir}
  killed = soak_processes.launch(
      argv, soak_processes.log_prefix(soak, "fallback"),
      lambda elapsed: len(run_comparison.committed_epochs(workdir)) >= 2)
  if not killed.killed:
    return {**record, "failures": [f"the run ended (status {killed.status}) before two "
                                   "checkpoints existed"]}
  committed = run_comparison.committed_epochs(workdir)
  epoch = committed[-1]
  flip = corrupt_checkpoint(os.path.join(workdir, "checkpoints", str(epoch)))
  relative = os.path.relpath(flip["file"], os.path.join(workdir, "checkpoints"))
  print(f"  fallback: killed at {killed.seconds:.2f} s with checkpoints {committed}; "
        f"flipped a bit of checkpoints/{relative} (byte {flip['offset']} of {flip['size']}): "
        f"{flip['effect']}", flush=True)
  done = soak_processes.launch(argv, soak_processes.log_prefix(soak, "fallback"))
  set_aside_lines = done.error_lines(soak_processes.SET_ASIDE_WORDS)
  began = soak_processes.start_line(done.log + ".out") or "(no start line)"
  failures = []
  if done.status != 0:
    failures.append(f"the resumed run exited with status {done.status}: "
                    f"{done.last_error_line()}")
  if len(set_aside_lines) != 1:
    failures.append(f"{len(set_aside_lines)} lines on stderr say "
                    f"{soak_processes.SET_ASIDE_WORDS!r}, expected one"
                    + "".join(f"\n    {w}" for w in set_aside_lines))
  # The checkpoint before the corrupt one is good: the run goes on from it.
  if not began.endswith(f"after epoch {committed[-2] + 1}"):
    failures.append(f"the resumed run said {began!r}, expected to resume after epoch "
                    f"{committed[-2] + 1} (the corrupt checkpoint was the one after epoch "
                    f"{epoch + 1})")
  set_aside, problem = _where_set_aside(
      workdir, flip["digest"], os.path.join(run_comparison.SET_ASIDE_DIR, relative))
  if problem:
    failures.append(problem)
  difference = (run_comparison.workdir_difference(ref["workdir"], workdir)
                if done.status == 0 else None)
  if difference:
    failures.append(f"results differ from the reference: {difference}")
  return {**record, "committed": committed, "corrupt_file": relative,
          "flip_offset": flip["offset"], "flip_effect": flip["effect"], "began": began,
          "set_aside": set_aside, "warnings": set_aside_lines, "status": done.status,
          "difference": difference, "failures": failures}


def report_fallback(check: dict) -> bool:
  """Prints the check's verdict; True when it passed."""
  if check["failures"]:
    print("fallback: FAILED: " + "; ".join(check["failures"])
          + f" (workdir {check['workdir']})")
    return False
  print(f"fallback: 1/1 identical, corrupt checkpoint set aside ({check['set_aside']})")
  return True
