"""Kill-and-resume soak: runs SIGKILLed at random moments resume to the uninterrupted numbers.

    python -m benchmarks.soak_resume
    python -m benchmarks.soak_resume --families=full_data --runs_per_family=1  # a quick look

For each method family (``--families``; small MNIST-1D runs that checkpoint every epoch),
two uninterrupted runs, the reference and a repeat that must equal it, then
``--runs_per_family`` runs of the same config, each run as a user would
(``python -m jaxsel.main``, a fresh process) and SIGKILLed 1 to ``--max_kills`` times before
it is allowed to finish. Each kill is one of (``--kinds``):

- ``random``: after a delay drawn uniformly over the repeat run's wall clock (the
  reference's includes filling the compilation cache);
- ``checkpoint``: the moment orbax's temporary directory of the checkpoint of a randomly
  drawn epoch (or a later one) appears in ``checkpoints/``: a write in progress;
- ``figures``: the moment a temporary ``.tmp-*.png`` appears in the workdir: a figure being
  written by ``jaxsel.files.atomic_output``.

After each kill the same command is run again, which resumes the workdir. A finished run
must equal the reference: ``summary.json`` and every ``metrics.jsonl`` record without their
wall-clock fields (same records, same order, epochs contiguous), the same output files, and
every array of every ``.npz`` file (exactly, NaN equal to NaN; ``run_comparison`` says in
full what "equal" means); the first difference is printed. Nothing corrupts these runs'
checkpoints, so a resume that sets one aside is reported as a failure too.

Then the corrupt-checkpoint fallback (``soak_fallback``; ``--skip_fallback`` leaves it out):
a run killed once two checkpoints exist gets one bit flipped in the state data of its
latest checkpoint (the largest data file's middle byte, or the next place that changes what
the checkpoint reads back) and is resumed. Expected: one warning line on stderr saying it
was set aside, the corrupt checkpoint moved out of ``checkpoints/`` (to
``checkpoints_set_aside/<epoch>``), not deleted, the run resumed from the checkpoint before
it, and results equal to the reference.

``--out`` keeps every workdir, each process's stdout and stderr (``logs/``) and
``results.jsonl``, one line per finished run, written as it finishes: a soak that is itself
killed continues where it stopped when run again with the same flags, and a finished one
only prints its results again. The exit status is 1 when anything differed or failed.
"""

import argparse
import json
import os
import random
import sys
import time

from benchmarks import run_comparison
from benchmarks import soak_fallback
from benchmarks import soak_processes
from benchmarks.soak_processes import KINDS, Family, Soak
from jaxsel import files

PRIORITIZATION = {"method.subset_fraction": 0.1, "method.warmup_epochs": 1}

FAMILIES = {
    "full_data": Family("full_data", {}),
    "prioritization": Family("prioritization", PRIORITIZATION),
    "prioritization_target": Family("prioritization", PRIORITIZATION, needs="target",
                                    needs_field="method.target.path"),
    "training_dynamics": Family("training_dynamics", {}),
    "coreset": Family("coreset", {}, needs="dynamics", needs_field="method.scores_path"),
    "budgeted": Family("budgeted", {"method.sampler": "p"}),
    "selective_backprop": Family("selective_backprop", {}),
}
# Runs whose score files other families read; never killed.
PREREQUISITES = {
    # A target model: all data every epoch, its entropies saved (trajectory and final).
    "target": Family("prioritization", {"method.subset_fraction": 1.0,
                                        "method.save_scores": True}),
    "dynamics": Family("training_dynamics", {}),
}
FALLBACK_FAMILY = "full_data"


# --- results, written as each run finishes ------------------------------------------------

class Results:
  """``results.jsonl``: one record per finished run, keyed by ``record["key"]``."""

  def __init__(self, path: str):
    self._path = path
    # A line cut short by a kill of the soak itself is left out (and its run redone).
    self.records = {r["key"]: r for r in files.read_jsonl(path)}

  def add(self, record: dict) -> dict:
    files.append_text(self._path, files.jsonl_line(record))
    self.records[record["key"]] = record
    return record


# --- runs -----------------------------------------------------------------------------

def uninterrupted(family: Family, workdir: str, soak: Soak, prerequisite_dirs: dict, *,
                  log_name: str, what: str) -> soak_processes.Process:
  """A run left to finish; one that fails leaves nothing to compare against."""
  done = soak_processes.launch(soak_processes.command(family, workdir, soak,
                                                      prerequisite_dirs),
                               soak_processes.log_prefix(soak, log_name))
  if done.status != 0:
    raise RuntimeError(f"{what} exited with status {done.status}: "
                       f"{done.last_error_line()} (log {done.log}.err)")
  return done


def prerequisite(name: str, soak: Soak) -> str:
  """The workdir of a finished prerequisite run, run now if needed."""
  workdir = os.path.join(soak.out, "prerequisites", name)
  if not os.path.exists(os.path.join(workdir, "summary.json")):
    print(f"prerequisite {name}: running", flush=True)
    done = uninterrupted(PREREQUISITES[name], workdir, soak, {},
                         log_name=f"prerequisite-{name}", what=f"prerequisite {name}")
    print(f"prerequisite {name}: done in {done.seconds:.2f} s", flush=True)
  return workdir


def reference(name: str, soak: Soak, results: Results, prerequisite_dirs: dict) -> dict:
  """Two uninterrupted runs of family ``name``: the reference, which also fills the
  compilation cache for the family's programs, and a repeat, which must equal it (else
  no resume could be judged) and times a process with a warm cache, as the killed ones
  are: the span random kills are drawn over."""
  key = f"reference/{name}"
  if key in results.records:
    return results.records[key]
  runs = []
  for label in ("reference", "repeat"):
    workdir = soak_processes.fresh_dir(os.path.join(soak.out, name, label))
    done = uninterrupted(FAMILIES[name], workdir, soak, prerequisite_dirs,
                         log_name=f"{name}-{label}", what=f"the {label} run of {name}")
    runs.append((workdir, done.seconds))
  difference = run_comparison.workdir_difference(runs[0][0], runs[1][0])
  print(f"{name}: uninterrupted runs {runs[0][1]:.2f} s (reference) and {runs[1][1]:.2f} s "
        f"(repeat): " + (f"DIFFERENT: {difference}" if difference else "identical"),
        flush=True)
  return results.add({"key": key, "family": name, "workdir": runs[0][0],
                      "seconds": runs[0][1], "repeat_workdir": runs[1][0],
                      "repeat_seconds": runs[1][1], "repeat_difference": difference})


def killed_run(name: str, run: int, soak: Soak, ref: dict, prerequisite_dirs: dict,
               *, runs: int) -> dict:
  """Run ``run`` of family ``name``: killed by its plan, resumed to the end, compared.

  Each kill is logged (``<run>.kills.jsonl`` beside the workdir) as it happens, so a soak
  killed meanwhile goes on with the rest of the plan.
  """
  family = FAMILIES[name]
  workdir = os.path.join(soak.out, name, f"run{run}")
  kills_log = workdir + ".kills.jsonl"
  argv = soak_processes.command(family, workdir, soak, prerequisite_dirs)
  log_name = f"{name}-run{run}"
  label = f"{name} run {run + 1}/{runs}"
  rng = random.Random(f"{soak.seed}/{name}/{run}")
  plan = soak_processes.kill_plan(rng, list(FAMILIES).index(name) + run, soak.max_kills,
                                  soak.kinds)
  kills = files.read_jsonl(kills_log)
  failure, finished = None, any(k.get("finished") for k in kills)
  for kind, draw in plan[len(kills):]:
    if finished:
      break
    trigger, moment = soak_processes.trigger_for(kind, draw, workdir, epochs=soak.epochs,
                                                 run_seconds=ref["repeat_seconds"])
    before = soak_processes.unfinished_writes(workdir)
    done = soak_processes.launch(argv, soak_processes.log_prefix(soak, log_name), trigger)
    entry = {"kind": kind, "moment": moment, "killed": done.killed,
             "seconds": done.seconds, "finished": not done.killed and done.status == 0,
             "mid_write": (soak_processes.mid_write(kind, workdir, before)
                           if done.killed else None),
             "warnings": done.error_lines(soak_processes.SET_ASIDE_WORDS)}
    if not done.killed and done.status != 0:
      failure = (f"exited with status {done.status} before its {kind} kill: "
                 f"{done.last_error_line()} (log {done.log}.err)")
      entry["failure"] = failure
    files.append_text(kills_log, files.jsonl_line(entry))
    kills.append(entry)
    finished = entry["finished"]
    what = ("killed" + {True: ", mid-write", False: ", write already done", None: ""}[
        entry["mid_write"]] if done.killed else f"not killed (exited {done.status})")
    print(f"  {label}: kill {len(kills)}/{len(plan)} ({kind}, {moment}): {what} at "
          f"{done.seconds:.2f} s", flush=True)
    if failure:
      break
  seconds = sum(k["seconds"] for k in kills)
  processes = len(kills)
  set_aside_lines = [w for k in kills for w in k.get("warnings", [])]
  if failure is None and not finished:
    done = soak_processes.launch(argv, soak_processes.log_prefix(soak, log_name))
    seconds, processes = seconds + done.seconds, processes + 1
    set_aside_lines += done.error_lines(soak_processes.SET_ASIDE_WORDS)
    if done.status != 0:
      failure = (f"resumed run exited with status {done.status}: {done.last_error_line()} "
                 f"(log {done.log}.err)")
  difference = None if failure else run_comparison.workdir_difference(ref["workdir"], workdir)
  return {"key": f"run/{name}/{run}", "family": name, "run": run, "workdir": workdir,
          "kills": kills, "processes": processes, "seconds": seconds, "failure": failure,
          "difference": difference, "litter": run_comparison.litter(workdir),
          "resumes": soak_processes.resumed_processes(soak, log_name),
          # Nothing corrupted these runs' checkpoints: any set aside is a false alarm.
          "set_aside": run_comparison.set_aside(workdir),
          "warnings": set_aside_lines}


# --- report ---------------------------------------------------------------------------

def _kill_counts(records: list[dict], kind: str) -> str:
  kills = [k for r in records for k in r["kills"] if k["kind"] == kind and k["killed"]]
  if kind == "random":
    return str(len(kills))
  return f"{len(kills)} ({sum(bool(k['mid_write']) for k in kills)})"


def identical(record: dict) -> bool:
  return record["failure"] is None and record["difference"] is None


def sound(record: dict) -> bool:
  """Identical, and no good checkpoint was set aside on the way."""
  return identical(record) and not record["set_aside"]


def was_killed(record: dict) -> bool:
  return any(k["killed"] for k in record["kills"])


def print_table(names: list[str], runs: dict[str, list[dict]], refs: dict[str, dict]) -> None:
  print(f"\n{'family':<22} {'killed runs':>11} {'identical':>9} {'random':>6} "
        f"{'checkpoint':>10} {'figures':>7} {'missed':>6} {'set aside':>9} "
        f"{'processes':>9} {'resumed':>7} {'repeat':>6} {'uninterrupted s':>15} "
        f"{'s per run':>9}")
  for name in names:
    records, ref = runs[name], refs[name]
    killed = [r for r in records if was_killed(r)]
    missed = sum(not k["killed"] for r in records for k in r["kills"])
    mean_seconds = sum(r["seconds"] for r in records) / max(len(records), 1)
    print(f"{name:<22} {len(killed):>11} {sum(map(identical, killed)):>9} "
          f"{_kill_counts(records, 'random'):>6} {_kill_counts(records, 'checkpoint'):>10} "
          f"{_kill_counts(records, 'figures'):>7} {missed:>6} "
          f"{sum(len(r['set_aside']) for r in records):>9} "
          f"{sum(r['processes'] for r in records):>9} "
          f"{sum(r.get('resumes', 0) for r in records):>7} "
          f"{'same' if ref['repeat_difference'] is None else 'DIFF':>6} "
          f"{ref['seconds']:>7.2f} /{ref['repeat_seconds']:>6.2f} {mean_seconds:>9.2f}")
  print("kills that happened, in parentheses those that left their write unfinished; "
        "missed: the process ended before its kill came; set aside: checkpoints a resume "
        "moved out of the way (none was corrupted); resumed: processes that went on from a "
        "checkpoint; repeat: a second uninterrupted run "
        "equals the reference; uninterrupted s: the reference (filling the compilation "
        "cache) / the repeat; s per run: all processes of a killed run")


def report_runs(names: list[str], runs: dict[str, list[dict]], refs: dict[str, dict]) -> bool:
  """Prints the table, what went wrong and "N/N identical"; True when all is well."""
  print_table(names, runs, refs)
  every = [r for name in names for r in runs[name]]
  for name in names:
    if refs[name]["repeat_difference"]:
      print(f"{name}: two uninterrupted runs differ: {refs[name]['repeat_difference']}")
  for record in every:
    label = f"{record['family']} run {record['run'] + 1}"
    if not identical(record):
      print(f"{label}: {record['failure'] or record['difference']} "
            f"(workdir {record['workdir']})")
    if not was_killed(record):
      print(f"{label}: ended before any kill came (not counted)")
    if record["set_aside"]:
      print(f"{label}: checkpoints set aside though none was corrupted: "
            f"{', '.join(record['set_aside'])} "
            f"(in {record['workdir']}/{run_comparison.SET_ASIDE_DIR}); "
            "first warning: " + (record["warnings"] or ["(none on stderr)"])[0])
    if record["litter"]:
      print(f"{label} left temporary files: {', '.join(record['litter'])}")
  killed = [r for r in every if was_killed(r)]
  if killed and not sum(r.get("resumes", 0) for r in killed):
    print("note: no process resumed from a checkpoint (each started a new run), so these "
          "runs tested restarting, not resuming")
  print(f"\n{sum(map(identical, killed))}/{len(killed)} identical")
  return (bool(killed) and all(map(sound, every))
          and all(refs[n]["repeat_difference"] is None for n in names))


def repeat_command(args) -> str:
  parts = ["python -m benchmarks.soak_resume", f"--runs_per_family={args.runs_per_family}",
           f"--families={args.families}", f"--seed={args.seed}", f"--epochs={args.epochs}",
           f"--max_kills={args.max_kills}", f"--kinds={args.kinds}", f"--out={args.out}"]
  parts += [f"--data_dir={args.data_dir}"] if args.data_dir else []
  parts += [f"--compilation_cache={args.compilation_cache}"] if args.compilation_cache else []
  parts += ["--skip_fallback"] if args.skip_fallback else []
  return " ".join(parts)


def _parse(argv):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--runs_per_family", type=int, default=2)
  parser.add_argument("--families", default=",".join(FAMILIES),
                      help=f"comma-separated, of: {', '.join(FAMILIES)}")
  parser.add_argument("--seed", type=int, default=0, help="of the kill plans and moments")
  parser.add_argument("--epochs", type=int, default=8)
  parser.add_argument("--max_kills", type=int, default=3, help="kills per run: 1..this")
  parser.add_argument("--kinds", default=",".join(KINDS),
                      help=f"the kinds of kill to draw from, of: {', '.join(KINDS)}")
  parser.add_argument("--out", default="runs/soak")
  parser.add_argument("--data_dir", default="", help="TFDS data dir (default: TFDS's)")
  parser.add_argument("--compilation_cache", default="",
                      help="shared by every process (default: OUT/compilation_cache)")
  parser.add_argument("--skip_fallback", action="store_true",
                      help="leave out the corrupt-checkpoint fallback check")
  args = parser.parse_args(argv)
  names = [n.strip() for n in args.families.split(",") if n.strip()]
  unknown = [n for n in names if n not in FAMILIES]
  if unknown or not names:
    parser.error(f"unknown families {unknown}; valid: {', '.join(FAMILIES)}")
  kinds = tuple(k for k in KINDS if k in args.kinds.split(","))
  if not kinds or set(args.kinds.split(",")) - set(KINDS):
    parser.error(f"--kinds must name some of {', '.join(KINDS)}, got {args.kinds!r}")
  if args.runs_per_family < 1 or args.max_kills < 1 or args.epochs < 2:
    parser.error("--runs_per_family and --max_kills must be >= 1, --epochs >= 2")
  out = os.path.abspath(args.out)
  soak = Soak(out=out, epochs=args.epochs, seed=args.seed, max_kills=args.max_kills,
              kinds=kinds, data_dir=os.path.abspath(args.data_dir) if args.data_dir else "",
              cache=os.path.abspath(args.compilation_cache
                                    or os.path.join(out, "compilation_cache")))
  settings_path = os.path.join(out, "soak.json")
  if os.path.exists(settings_path):
    with open(settings_path) as f:
      if json.load(f) != soak.settings():
        parser.error(f"{out} holds a soak with other settings ({settings_path}); "
                     "use another --out")
  return args, names, soak


def main(argv=None) -> int:
  args, names, soak = _parse(argv)
  try:
    return _soak(args, names, soak)
  except RuntimeError as e:  # an uninterrupted run failed: nothing to compare against
    print(f"soak stopped: {e}", flush=True)
    return 1


def _soak(args, names: list[str], soak: Soak) -> int:
  os.makedirs(soak.out, exist_ok=True)
  with open(os.path.join(soak.out, "soak.json"), "w") as f:
    json.dump(soak.settings(), f, indent=2, sort_keys=True)
  results = Results(os.path.join(soak.out, "results.jsonl"))
  started = time.monotonic()
  print(f"soak: {', '.join(names)}; {args.runs_per_family} killed run(s) each, "
        f"{args.epochs} epochs, 1-{args.max_kills} kills per run; in {soak.out}", flush=True)

  needed = sorted({FAMILIES[n].needs for n in names if FAMILIES[n].needs})
  prerequisite_dirs = {need: prerequisite(need, soak) for need in needed}
  refs, runs = {}, {}
  for name in names:
    refs[name] = reference(name, soak, results, prerequisite_dirs)
    runs[name] = []
    for run in range(args.runs_per_family):
      key = f"run/{name}/{run}"
      if key not in results.records:
        record = results.add(killed_run(name, run, soak, refs[name], prerequisite_dirs,
                                        runs=args.runs_per_family))
        verdict = ("identical" if identical(record) else
                   f"NOT IDENTICAL: {record['failure'] or record['difference']}")
        print(f"  {name} run {run + 1}/{args.runs_per_family}: {record['processes']} "
              f"processes, {record['seconds']:.2f} s: {verdict}", flush=True)
      runs[name].append(results.records[key])

  ok = report_runs(names, runs, refs)
  if not args.skip_fallback:
    if "fallback" not in results.records:
      ref = refs.get(FALLBACK_FAMILY) or reference(FALLBACK_FAMILY, soak, results, {})
      results.add(soak_fallback.fallback(soak, ref, name=FALLBACK_FAMILY,
                                         family=FAMILIES[FALLBACK_FAMILY]))
    ok = soak_fallback.report_fallback(results.records["fallback"]) and ok
  print(f"soak time {time.monotonic() - started:.1f} s (this invocation); results in "
        f"{os.path.join(soak.out, 'results.jsonl')}")
  print("repeat (a new --out runs it afresh; this one reprints its results):\n  "
        + repeat_command(args))
  return 0 if ok else 1


if __name__ == "__main__":
  sys.exit(main())
