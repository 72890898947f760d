"""Tables, Pareto figure and verdicts of the selection comparison grid.

A *result* is ``{"arg" (its label DATASET,METHOD,BUDGET), "seed", "summary", "records" (the
run's metrics.jsonl), "command", "wall_seconds", "extra_scoring_seconds"}``. Every number
of the report is derived here from those: a method's cost is its own run
(``summary.timings.run_seconds``) plus the same seed's scoring runs it needs
(``paper.SCORING_RUNS``; the forgetting ordering's seconds are its extra), and its
time-to-target reads the per-epoch validation accuracy, never the test set.
"""

import math
import os
import statistics

from configs.papers import selection_comparison as paper
from experiments import claims, grid, paired, selection_comparison_claims
from jaxsel import files

METHOD_NAMES = {
    "fewer_steps": "Full data, fewer steps", "random": "Random subset (fixed)",
    "entropy": "Max entropy (prioritization)", "entropy_calibrated": "Max entropy + focal loss",
    "ccs": "CCS coreset", "forgetting": "Forgetting (least forgotten removed)",
    "unif": "unif-SGD", "p": "p-SGD", "c": "c-SGD", "sb": "Selective backprop",
    "infobatch": "InfoBatch", "rho": "RHO-LOSS", "full": "Full data",
    "scores": "training dynamics (scores)", "irreducible": "irreducible-loss model"}
SHORT = {"fewer_steps": "fewer", "random": "rand", "entropy": "ent", "entropy_calibrated": "ent+f",
         "ccs": "ccs", "forgetting": "forg", "unif": "unif", "p": "p", "c": "c", "sb": "sb",
         "infobatch": "ib", "rho": "rho", "full": "full"}
DATASET_NAMES = {"fashion_mnist": "Fashion-MNIST", "mnist1d": "MNIST-1D"}
TARGET_SHARE = 0.99  # of the same seed's full-data last-epoch validation accuracy
# A second, lower target: at these budgets few runs reach 99 % of full data at all.
LOW_TARGET_SHARE = 0.95
MARKERS = {0.3: "o", 0.5: "s", 1.0: "*"}


def parse(label: str) -> tuple[str, str, float]:
  dataset, method, budget = label.split(",")[:3]
  return dataset, method, float(budget)


def time_to_target(records, target: float, *, offset: float = 0.0):
  """(epochs, seconds) up to the end of the first epoch whose validation accuracy reaches
  ``target``: the records' cumulative ``seconds`` plus ``offset`` (scoring runs); None if
  no epoch does."""
  seconds = offset
  for epoch, record in enumerate(records, start=1):
    seconds += record["seconds"]
    if record.get("val_accuracy", -math.inf) >= target:
      return epoch, seconds
  return None


def _run_seconds(result) -> float:
  return result["summary"]["timings"]["run_seconds"]


def _index(results) -> dict:
  return {(*parse(r["arg"]), r["seed"]): r for r in results}


def derive(result, index) -> dict:
  """A run's numbers: accuracy, passes as % of the same seed's full-data run, seconds of
  scoring, of the run and in total, and its time to the seed's target (None: missing)."""
  dataset, method, _ = parse(result["arg"])
  seed, summary = result["seed"], result["summary"]
  full = index.get((dataset, "full", 1.0, seed))
  scoring_runs = [index.get((dataset, kind, 1.0, seed))
                  for kind in paper.SCORING_RUNS.get(method, ())]
  scoring = None if None in scoring_runs else (
      sum(_run_seconds(r) for r in scoring_runs) + result.get("extra_scoring_seconds", 0.0))
  out = {"test_accuracy": summary["test_accuracy"], "test_ece": summary["test_ece"],
         "num_epochs": summary["num_epochs"], "scoring_seconds": scoring,
         "infobatch_saving_percent": summary.get("infobatch_saving_percent"),
         "run_seconds": _run_seconds(result), "backprop_pct": None, "forward_pct": None,
         "total_seconds": None if scoring is None else scoring + _run_seconds(result),
         "epochs_to_target": None, "seconds_to_target": None, "reached": False,
         "epochs_to_low_target": None, "seconds_to_low_target": None, "reached_low": False}
  if full is not None:
    reference = full["summary"]
    out["backprop_pct"] = (100 * summary["examples_backpropagated"]
                           / reference["examples_backpropagated"])
    out["forward_pct"] = 100 * summary["examples_forwarded"] / reference["examples_forwarded"]
    full_val = [r for r in full["records"] if "val_accuracy" in r][-1]["val_accuracy"]
    for share, suffix, flag in ((TARGET_SHARE, "target", "reached"),
                                (LOW_TARGET_SHARE, "low_target", "reached_low")):
      reached = time_to_target(result["records"], share * full_val, offset=scoring or 0.0)
      if reached is not None and scoring is not None:
        out.update({flag: True, f"epochs_to_{suffix}": reached[0],
                    f"seconds_to_{suffix}": reached[1]})
  return out


def cells(results) -> dict[tuple, dict]:
  """(dataset, method, budget) -> {'seeds', 'runs' (derived), 'commands'}, in run order."""
  index = _index(results)
  out = {}
  for result in results:
    cell = out.setdefault(parse(result["arg"]), {"seeds": [], "runs": [], "commands": []})
    cell["seeds"].append(result["seed"])
    cell["runs"].append(derive(result, index))
    cell["commands"].append(result["command"])
  return out


def mean_std(cell, key) -> tuple[float, float] | None:
  """Mean and population std over the cell's seeds that have ``key``; None if none do."""
  values = [r[key] for r in cell["runs"] if r[key] is not None]
  if not values:
    return None
  return statistics.fmean(values), statistics.pstdev(values)


def paired_difference(accuracy: dict, baseline: dict) -> dict | None:
  """Per-seed differences ``accuracy[seed] − baseline[seed]`` over the common seeds
  (``experiments.paired``): mean, sample std, n, the 95 % Student-t interval and a verdict,
  'better' / 'worse' where the interval excludes 0, else 'inconclusive'."""
  diff = paired.paired_difference(accuracy, baseline)
  return None if diff is None else diff._asdict()


def _accuracy_by_seed(cell) -> dict:
  return {s: r["test_accuracy"] for s, r in zip(cell["seeds"], cell["runs"])}


def versus(all_cells, dataset, budget, method, baseline="random") -> dict | None:
  key, other = (dataset, method, budget), (dataset, baseline, budget)
  if key not in all_cells or other not in all_cells:
    return None
  return paired_difference(_accuracy_by_seed(all_cells[key]),
                           _accuracy_by_seed(all_cells[other]))


def pareto_front(points) -> list[int]:
  """Indices of the (seconds, accuracy) points no other point dominates (at most as slow
  and at least as accurate, one of them strictly), by ascending seconds."""
  front = [i for i, (s, a) in enumerate(points)
           if not any(t <= s and b >= a and (t < s or b > a) for t, b in points)]
  return sorted(front, key=lambda i: points[i])


def _budget_methods(all_cells, dataset, budget) -> list[str]:
  """The methods run at ``budget``, by descending mean test accuracy."""
  found = [k[1] for k in all_cells if k[0] == dataset and k[2] == budget
           and k[1] in METHOD_NAMES and k[1] not in paper.FULL_ONLY]
  return sorted(found, key=lambda m: -mean_std(all_cells[(dataset, m, budget)],
                                               "test_accuracy")[0])


def _name(all_cells, key) -> str:
  name = METHOD_NAMES[key[1]]
  if key[1] == "infobatch":
    epochs = sorted({r["num_epochs"] for r in all_cells[key]["runs"]})
    name += f" ({', '.join(map(str, epochs))} epochs)"
  return name


def _fmt(stat, digits=2) -> str:
  return "–" if stat is None else f"{stat[0]:.{digits}f} ± {stat[1]:.{digits}f}"


def _target(cell, key, digits, flag="reached") -> str:
  runs = cell["runs"]
  reached = [r[key] for r in runs if r[flag]]
  if not reached:
    return "not reached"
  text = f"{statistics.fmean(reached):.{digits}f}"
  if len(reached) < len(runs):
    return f"{text} ({len(reached)} of {len(runs)} seeds)"
  return f"{text} ± {statistics.pstdev(reached):.{digits}f}"


def _row(all_cells, key, name=None) -> str:
  cell = all_cells[key]

  def stat(field, digits=2):
    return _fmt(mean_std(cell, field), digits)

  return (f"| {name or _name(all_cells, key)} | {stat('test_accuracy')} | {stat('test_ece')} "
          f"| {stat('backprop_pct', 1)} | {stat('forward_pct', 1)} "
          f"| {stat('scoring_seconds', 1)} | {stat('run_seconds', 1)} "
          f"| {stat('total_seconds', 1)} "
          f"| {_target(cell, 'epochs_to_low_target', 1, 'reached_low')} "
          f"| {_target(cell, 'seconds_to_low_target', 1, 'reached_low')} "
          f"| {_target(cell, 'epochs_to_target', 1)} "
          f"| {_target(cell, 'seconds_to_target', 1)} |")


TABLE_HEAD = ["| method | test acc (%) | test ECE (%) | backprop (% of full) | forward (% of "
              "full) | scoring s | train+eval s (the run) | total s | "
              f"epochs to {100 * LOW_TARGET_SHARE:.0f} % | s to {100 * LOW_TARGET_SHARE:.0f} % | "
              f"epochs to {100 * TARGET_SHARE:.0f} % | s to {100 * TARGET_SHARE:.0f} % |",
              "|---" * 12 + "|"]


def budget_table(all_cells, dataset, budget) -> list[str]:
  lines = list(TABLE_HEAD)
  lines += [_row(all_cells, (dataset, m, budget)) for m in _budget_methods(all_cells, dataset,
                                                                           budget)]
  for method, name in (("full", "*Full data (reference)*"),
                       ("infobatch", "*InfoBatch, full length (lossless setting)*")):
    if (dataset, method, 1.0) in all_cells:
      lines.append(_row(all_cells, (dataset, method, 1.0), name))
  return lines


def _interval(diff) -> str:
  if math.isnan(diff["low"]):
    return ""
  return f" [{diff['low']:+.2f}, {diff['high']:+.2f}]"


def versus_random_section(all_cells, dataset, budget, baseline="random") -> list[str]:
  """The paired differences of every method of the budget with ``baseline`` (the random
  subset, or full data with fewer steps), a table and a sentence per verdict."""
  short = {"random": "random", "fewer_steps": "fewer steps"}[baseline]
  noun = BASELINE_WORDS[baseline]
  lines = [f"| method | paired Δ test acc vs {short} (points) [95 % CI] | sd of Δ | seeds | "
           "verdict |", "|---|---|---|---|---|"]
  groups = {paired.BETTER: [], paired.WORSE: [], paired.INCONCLUSIVE: []}
  for method in _budget_methods(all_cells, dataset, budget):
    if method == baseline:
      continue
    diff = versus(all_cells, dataset, budget, method, baseline)
    if diff is None:
      continue
    spread = "–" if math.isnan(diff["std"]) else f"{diff['std']:.2f}"
    lines.append(f"| {METHOD_NAMES[method]} | {diff['mean']:+.2f}{_interval(diff)} | "
                 f"{spread} | {diff['n']} | {diff['verdict']} |")
    groups.setdefault(diff["verdict"], []).append(f"{METHOD_NAMES[method]} "
                                                  f"({diff['mean']:+.2f})")
  words = {paired.BETTER: f"Beat {noun} (interval above 0)",
           paired.WORSE: f"Worse than {noun} (interval below 0)",
           paired.INCONCLUSIVE: "Inconclusive (the interval contains 0)"}
  summary = [f"{words.get(v, v)}: {', '.join(names)}." for v, names in groups.items() if names]
  return lines + ["", " ".join(summary) or f"No method has paired runs with {noun}.", ""]


BASELINE_WORDS = {"random": "a random subset", "fewer_steps": "full data with fewer steps"}
VERDICT_WORDS = {paired.BETTER: "95 % interval above 0", paired.WORSE: "95 % interval below 0",
                 paired.INCONCLUSIVE: "95 % interval contains 0"}


def recommendation(all_cells, dataset, budget) -> str | None:
  """One sentence: the most accurate method at the budget, its paired margins over the
  two cheap baselines, the seconds of all three, and the budget's time-accuracy front."""
  ranked = _budget_methods(all_cells, dataset, budget)
  if not ranked:
    return None
  best = ranked[0]
  seconds = {m: mean_std(all_cells[(dataset, m, budget)], "total_seconds")
             for m in (best, *BASELINE_WORDS) if (dataset, m, budget) in all_cells}
  accuracy = mean_std(all_cells[(dataset, best, budget)], "test_accuracy")[0]
  text = (f"**{DATASET_NAMES.get(dataset, dataset)}, {100 * budget:.0f} %**: "
          f"{METHOD_NAMES[best]} is the most accurate, {accuracy:.2f} %")
  margins = []
  for baseline, words in BASELINE_WORDS.items():
    diff = versus(all_cells, dataset, budget, best, baseline) if best != baseline else None
    if diff is not None:
      margins.append(f"{diff['mean']:+.2f} points over {words} "
                     f"({VERDICT_WORDS.get(diff['verdict'], diff['verdict'])})")
  if margins:
    text += ", " + " and ".join(margins)
  times = [f"{t[0]:.0f} s" + ("" if m == best else f" for {BASELINE_WORDS[m]}")
           for m, t in seconds.items() if t is not None]
  if times and best in seconds:
    text += f"; total time {times[0]}" + (" against " + " and ".join(times[1:])
                                          if times[1:] else "")
  points = [(m, mean_std(all_cells[(dataset, m, budget)], "total_seconds"),
             mean_std(all_cells[(dataset, m, budget)], "test_accuracy")) for m in ranked]
  points = [(m, t[0], a[0]) for m, t, a in points if t is not None]
  front = [points[i][0] for i in pareto_front([(t, a) for _, t, a in points])]
  if front:
    text += ("; the time-accuracy front at this budget, from fastest: "
             + ", ".join(METHOD_NAMES[m] for m in front))
  return text + "."


def rows(results) -> list[dict]:
  """CSV rows, one per cell (mean / std over seeds)."""
  all_cells, out = cells(results), []
  keys = ("test_accuracy", "test_ece", "backprop_pct", "forward_pct", "scoring_seconds",
          "run_seconds", "total_seconds", "epochs_to_target", "seconds_to_target",
          "epochs_to_low_target", "seconds_to_low_target", "num_epochs")
  needs = {"epochs_to_target": "reached", "seconds_to_target": "reached",
           "epochs_to_low_target": "reached_low", "seconds_to_low_target": "reached_low"}
  for key, cell in all_cells.items():
    row = {"dataset": key[0], "method": key[1], "budget": key[2],
           "seeds": " ".join(map(str, cell["seeds"])),
           "target_reached": sum(r["reached"] for r in cell["runs"]),
           "low_target_reached": sum(r["reached_low"] for r in cell["runs"])}
    for name in keys:
      stat = mean_std({"runs": [r for r in cell["runs"]
                                if name not in needs or r[needs[name]]]}, name)
      row[f"{name}_mean"], row[f"{name}_std"] = ("", "") if stat is None else (
          round(stat[0], 4), round(stat[1], 4))
    dataset, method, budget = key
    diff = versus(all_cells, dataset, budget, method) if method != "random" else None
    row.update(vs_random_mean="" if diff is None else round(diff["mean"], 4),
               vs_random_std="" if diff is None else round(diff["std"], 4),
               vs_random_ci_low="" if diff is None else round(diff["low"], 4),
               vs_random_ci_high="" if diff is None else round(diff["high"], 4),
               vs_random_verdict="" if diff is None else diff["verdict"],
               command_first_seed=cell["commands"][0])
    out.append(row)
  return out


def _machine() -> str:
  model = ""
  if os.path.exists("/proc/cpuinfo"):
    with open("/proc/cpuinfo") as f:
      model = next((line.split(":", 1)[1].strip() for line in f
                    if line.startswith("model name")), "")
  return f"{os.cpu_count()}-core CPU" + (f" ({model})" if model else "")


def _infobatch_lines(all_cells, dataset) -> list[str]:
  """f of the full-length InfoBatch runs, the epochs E' it gave each budget, and the
  runs' own "total saving" (``infobatch_saving_percent``, pruned examples over E' · N)."""
  full = all_cells.get((dataset, "infobatch", 1.0))
  fraction = None if full is None else mean_std(full, "backprop_pct")
  if fraction is None:
    return []
  keys = [(dataset, "infobatch", b) for b in (1.0, *paper.BUDGETS)
          if (dataset, "infobatch", b) in all_cells]
  saving = [f"{100 * k[2]:.0f} %: {all_cells[k]['runs'][0]['num_epochs']} epochs, saving "
            f"{statistics.fmean(r['infobatch_saving_percent'] for r in all_cells[k]['runs']):.1f} %"
            for k in keys if all(r["infobatch_saving_percent"] is not None
                                 for r in all_cells[k]["runs"])]
  lossless = versus(all_cells, dataset, 1.0, "infobatch", baseline="full")
  claim = "" if lossless is None or math.isnan(lossless["low"]) else (
      f" The paper's \"lossless\" claim at full length: test accuracy minus full data's, "
      f"paired by seed, {lossless['mean']:+.2f} points [95 % CI {lossless['low']:+.2f}, "
      f"{lossless['high']:+.2f}]: " + {
          paired.WORSE: "a loss (the interval lies below 0).",
          paired.BETTER: "a gain (the interval lies above 0).",
          paired.INCONCLUSIVE: "no difference detected; the interval allows a loss of up "
                               f"to {max(-lossless['low'], 0.0):.2f} points."
      }[lossless["verdict"]])
  return [f"InfoBatch at full length back-propagated f = {fraction[0]:.1f} % of the full-data "
          "run (mean over seeds); budget b then gets E' = max(2, round(b · E / f)) epochs. "
          "Epochs and InfoBatch's own \"total saving\" (`infobatch_saving_percent`): "
          + ("; ".join(saving) or "not recorded") + "." + claim, ""]


def _scoring_table(all_cells, dataset) -> list[str]:
  lines = ["| scoring run | used by | run seconds | test acc (%) |", "|---|---|---|---|"]
  for kind in paper.SCORING:
    cell = all_cells.get((dataset, kind, 1.0))
    if cell is not None:
      users = ", ".join(METHOD_NAMES[m] for m, k in paper.SCORING_RUNS.items() if kind in k)
      lines.append(f"| {METHOD_NAMES[kind]} | {users} | "
                   f"{_fmt(mean_std(cell, 'run_seconds'), 1)} | "
                   f"{_fmt(mean_std(cell, 'test_accuracy'))} |")
  return lines


def _setting(results, dataset) -> str:
  """What the runs of ``dataset`` trained on, from a full-data run's summary."""
  full = next((r["summary"] for r in results if parse(r["arg"])[:2] == (dataset, "full")),
              None)
  name = DATASET_NAMES[dataset]
  if full is None:
    return f"{name}: {paper.EPOCHS[dataset]} epochs"
  subset = (f"a fixed random {full['num_train']:,} of its training examples "
            "(`dataset.train_subset_size`)" if paper.TRAIN_SUBSET_SIZE[dataset] else
            f"all {full['num_train']:,} training examples")
  return (f"{name} on {subset}, {full['num_validation']:,} validation / "
          f"{full['num_test']:,} test, {full['num_epochs']} epochs")


def markdown(results, *, seeds, figure_path, ordering_command) -> str:
  all_cells = cells(results)
  datasets = [d for d in DATASET_NAMES if any(k[0] == d for k in all_cells)]
  minutes = sum(_run_seconds(r) + r.get("extra_scoring_seconds", 0.0) for r in results) / 60
  lines = [
      "# Which data-selection method for my budget? Every family, cost accounted", "",
      "    python -m experiments.selection_comparison   # the whole grid, resumable",
      "    python -m jaxsel.main --config=configs/papers/selection_comparison.py:"
      "fashion_mnist,p,0.3 --workdir=DIR --config.seed=0   # one cell, one seed",
      f"    {ordering_command}   # a forgetting run's ordering", "",
      f"{len(results)} runs, {minutes:.0f} minutes of run time on a {_machine()}, "
      f"seeds {', '.join(map(str, seeds))}; every cell's command is in the .csv file.", "",
      "**Shortened for a grid of about an hour on this machine** (sizes in "
      "`configs/papers/selection_comparison.py`): "
      + "; ".join(_setting(results, d) for d in datasets) + ". Small CNNs, batch "
      f"{paper.BATCH_SIZE}, SGD with a linear per-step decay, validation every epoch. "
      "Absolute accuracies and every gap belong to this scale.", "",
      "How to read the tables: **test acc / ECE**: last epoch, mean ± std over seeds. "
      "**backprop / forward**: examples back-propagated / forwarded as % of the same seed's "
      "full-data run. **scoring s**: wall seconds of the scoring runs the method needs first "
      "(the same seed's training-dynamics run for CCS and forgetting, plus the ordering; "
      "the irreducible-loss run for RHO-LOSS), counted in full for every method using them. "
      "**train+eval s**: the run's own wall time (set-up and compilation, training, "
      "validation every epoch, test; the dataset is loaded once and shared). **epochs / "
      "seconds to target**: the first epoch whose *validation* accuracy reaches "
      f"{100 * LOW_TARGET_SHARE:.0f} % and {100 * TARGET_SHARE:.0f} % of the same seed's "
      "full-data last-epoch validation "
      "accuracy, and the cumulative epoch seconds to its end plus the scoring seconds. "
      "The runs share a process, so later runs reuse some compiled programs of earlier ones; "
      "InfoBatch's calibration (its full-length runs) is not counted in its budgeted rows.", ""]
  if figure_path:
    lines += [f"![test accuracy against total seconds]({os.path.basename(figure_path)})", ""]
  advice = []
  for dataset in datasets:
    lines += [f"## {DATASET_NAMES[dataset]}", "", *_infobatch_lines(all_cells, dataset),
              *_scoring_table(all_cells, dataset), ""]
    for budget in paper.BUDGETS:
      if not _budget_methods(all_cells, dataset, budget):
        continue
      lines += [f"### {100 * budget:.0f} % budget (sorted by test accuracy)", "",
                *budget_table(all_cells, dataset, budget), ""]
      advice.append(recommendation(all_cells, dataset, budget))
  lines += ["## Which methods beat a random subset of the same cost", "",
            "Paired by seed: each method's test accuracy minus that of the fixed random "
            "subset of the same back-propagation budget and seed (same split, "
            "initialisation and data order), with a 95 % Student-t interval over the "
            f"{len(seeds)} seeds (`experiments/paired.py`). **Better** / **worse**: the "
            "interval lies above / below 0; otherwise inconclusive. With 3 seeds t = 4.30, "
            "so a gap must be about 2.5 times the sd of the differences to decide.", ""]
  for dataset in datasets:
    for budget in paper.BUDGETS:
      if (dataset, "random", budget) in all_cells:
        lines += [f"### {DATASET_NAMES[dataset]}, {100 * budget:.0f} %", "",
                  *versus_random_section(all_cells, dataset, budget)]
  lines += ["## ... and which beat full data trained for fewer steps", "",
            "The same paired comparison against the other free baseline: every training "
            "example, the run stopped after the budget's share of the steps.", ""]
  for dataset in datasets:
    for budget in paper.BUDGETS:
      if (dataset, "fewer_steps", budget) in all_cells:
        lines += [f"### {DATASET_NAMES[dataset]}, {100 * budget:.0f} %, against fewer steps",
                  "", *versus_random_section(all_cells, dataset, budget, "fewer_steps")]
  lines += ["## Which method for my budget?", "",
            *[f"- {a}" for a in advice if a], ""]
  return "\n".join(lines)


def write(results, output: str, *, seeds, ordering_command: str) -> None:
  """The csv, figure and markdown of ``results`` at path prefix ``output``."""
  if not results:
    print("no finished runs to report")
    return
  os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
  grid.write_csv(output + ".csv", rows(results))
  from experiments import selection_comparison_figure  # matplotlib only when writing
  figure_path = selection_comparison_figure.figure(cells(results), output + "_pareto.png")
  files.write_text(output + ".md", markdown(results, seeds=seeds, figure_path=figure_path,
                                            ordering_command=ordering_command))
  claims.write(output + "_claims.json", selection_comparison_claims.collect(cells(results)))
  print(f"wrote {output}.md, .csv, _pareto.png and _claims.json ({len(results)} runs)")
