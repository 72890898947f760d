"""jaxsel: data selection during neural-network training, in JAX/Flax.

Stable import paths of the pieces meant for use in other training loops (pure functions,
per-example, jittable):

- ``jaxsel.losses``: per-example losses (``cross_entropy``, ``label_smoothing_cross_entropy``,
  ``focal_loss``);
- ``jaxsel.scores``: per-example scores from logits (``entropy``);
- ``jaxsel.trackers``: per-example tables kept during training (``Tracker``,
  ``StepOutputs``, ``last_score``, ``scatter_set``, ``scatter_add``, ``combine``);
- ``jaxsel.selection``: subset selectors (``top_k``, ``uniform``, ``random_subset``,
  ``descending_order``, ``tie_break_ranks``, ``subset_size``, ``weighted_without_replacement``);
- ``jaxsel.augment``: augmentations and mixings (``crop_flip``, ``cutout``, ``mixup``,
  ``mixed_loss``);
- ``jaxsel.dynamics``: the training-dynamics tracker (``tracker``, ``scores``);
- ``jaxsel.metrics``: accuracy, NLL, Brier, ECE / MCE / OE from mergeable sums
  (``calibration_sums``, ``summarize``, ``expected_calibration_error``);
- ``jaxsel.artifacts``: per-run score files (``ScoreFile``, ``save``, ``load``,
  ``aggregate``, ``load_many``; the last two live in ``jaxsel.score_aggregation``);
- ``jaxsel.checkpoint``: verified orbax checkpoints of a run with a fallback to the last
  good one (``Checkpointer``);
- ``jaxsel.importance``: budgeted importance sampling's difficulty tracker, p-SGD / c-SGD
  sampling weights, budget sizes and coverage entropy (``difficulty_tracker``,
  ``sampling_weights``, ``budget_size``, ``coverage_entropy``);
- ``jaxsel.ricap``: RICAP as a batch mixing, and area-weighted attribution of a mixed
  image's scores to its sources (``ricap``, ``area_attribution``);
- ``jaxsel.randaugment``: RandAugment's 16 operations on uint8 images (``rand_augment``,
  ``apply_op``);
- ``jaxsel.orderings``: orderings for removal over seeds (``OrderingSpec``, ``build``,
  ``ordered_ids``);
- ``jaxsel.data.variants``: removal and noise of a dataset (``kept_ids``, ``label_noise``,
  ``value_noise``, ``apply``).

``jaxsel.train.train_and_evaluate(config, workdir)`` runs a whole experiment; method
families live in ``jaxsel.methods``. Bad input anywhere raises
``jaxsel.config_errors.UserError`` (a ``ValueError``) with a one-line message.
"""

__version__ = "0.1.0"
