"""Default job: the MNIST-1D 1D CNN trained on all of its training data.

    python -m jaxsel.main --config=configs/default.py --workdir=runs/default

Expected: about 95 % test accuracy (mean of 3 seeds: 95.27 %) in about 4 s on a 2-core CPU
with the compilation cache filled, 5-6 s on a first run (see README for the measured
numbers).

The argument names a method family, with its default settings in ``config.method``:

    python -m jaxsel.main --config=configs/default.py:prioritization --workdir=runs/top_k \\
        --config.method.subset_fraction=0.1 --config.method.warmup_epochs=5

(``full_data`` when omitted; ``jaxsel.methods.METHODS`` lists them). Paper settings are in
``configs/papers/``.

Any method can train on a variant of the training set: ``config.removal`` removes examples
(a window of an ordering file, or at random) and ``config.noise`` adds label or input
noise, e.g. ``--config.removal.ordering_path=runs/order/ordering.npz
--config.removal.remove_n=1000 --config.noise.label_percent=20``.
"""

import ml_collections

from jaxsel import methods


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0
  # Devices the run is data-parallel over: 0 = every device JAX sees (all local ones; all
  # of every process's on a multi-host run); 1 = exactly the single-device path.
  config.num_devices = 0

  config.dataset = ml_collections.ConfigDict(dict(
      name="mnist1d",  # 'mnist1d', 'mnist1d/large', 'fashion_mnist_local', 'cifar10', ...
      data_dir="",  # '' = TFDS's default data directory
      train_fraction=0.9,  # of the source train split; the rest is validation
      # > 0: train on a random subset of this many of the training ids (drawn with
      # split_seed, so the same for every run seed); validation ids unchanged. 0: all.
      train_subset_size=0,
      split_seed=42,  # independent of `seed`, so every run sees the same split
      # Per-channel input statistics; () = the dataset's usual constants.
      normalization_mean=(),
      normalization_std=(),
      # Where inputs live: 'device' (read whole, held on the device, batches gathered
      # inside jit: the fast path) | 'stream' (read by id from the ArrayRecord files chunk
      # by chunk, for data larger than memory) | 'auto' (stream when the decoded float32
      # train + test inputs exceed memory_budget_mb, or differ in size).
      test_split="test",  # the source split evaluated as test ('validation': ImageNet)
      storage="auto",
      memory_budget_mb=4096,
      read_threads=8,  # host threads reading and decoding on the streaming path
      # > 0: ImageNet-style host crops to image_size² pixels (random resized crop + flip
      # for training, centre crop of eval_crop_fraction of the shorter side otherwise),
      # for images of varying size; streaming only. 0: inputs as stored.
      image_size=0,
      eval_crop_fraction=0.875,
  ))

  config.model = ml_collections.ConfigDict(dict(
      name="cnn1d",
      # The model's options. Listed so that --config.model.kwargs.channels=64 works on the
      # locked config; a config choosing another model replaces the whole section.
      # dtype: 'float32' | 'bfloat16' (compute; params, BatchNorm statistics and the loss
      # stay float32).
      kwargs=ml_collections.ConfigDict(dict(conv_impl="auto", channels=25,
                                            use_batchnorm=False, dtype="float32")),
  ))

  # Which examples each epoch trains on: a method family and its own settings.
  config.method = methods.default_config(arg or "full_data")

  # Examples removed from the training ids before training, for any method (ALGORITHMS.md
  # D.6; jaxsel.data.variants). Nothing is removed while remove_n and remove_subsample are 0.
  config.removal = ml_collections.ConfigDict(dict(
      # A score file with int32 table `rank` (0 = lowest score) and float32 `score`, made on
      # this dataset and split; '' = none (random removal needs none).
      ordering_path="",
      remove_n=0,  # r: examples removed
      # k: the removed window is ranks k .. k + r - 1 of the ordering (a window past the end
      # is an error); -1: remove r at random instead (no ordering).
      keep_lowest_n=0,
      # s > 0: remove a random s of the k lowest-ranked instead of the window (remove_n
      # must then be 0), e.g. part of a block of tied scores.
      remove_subsample=0,
  ))

  # Noise on the training examples kept after removal; validation and test stay clean.
  config.noise = ml_collections.ConfigDict(dict(
      # % of the training examples whose label is replaced by a uniform other class.
      label_percent=0.0,
      # % of each training input's locations (pixels, with one random channel each; the
      # positions of a 1-d signal) that get additive noise N(value_mean, value_std²).
      value_percent=0.0,
      # On the stored scale: 0-255 for uint8 images (the result truncated to an integer);
      # the signal's own (unnormalised) values for float inputs. 120 is the reference's.
      value_mean=120.0,
      value_std=0.0,
      # wrap: uint8 wrap-around (the reference), for float inputs modulo the training
      # inputs' [min, max] | clip: to 0-255, or to that [min, max].
      value_overflow="wrap",
  ))

  # Per-example training loss; each reads only its own hyper-parameter.
  config.loss = ml_collections.ConfigDict(dict(
      name="cross_entropy",  # cross_entropy | label_smoothing | focal
      label_smoothing=0.1,  # ε
      focal_gamma=3.0,  # γ
  ))

  config.augmentation = ml_collections.ConfigDict(dict(
      name="none",  # none | crop_flip (images: pad, random crop, horizontal flip)
      crop_padding=4,
      # black: pad with black pixels, as padding before normalising does | mean: with the
      # dataset's mean colour | reflect: mirror the border.
      pad_mode="black",
      flip=True,
      # L > 0: after the named augmentation, zero (= paint the mean colour) one hole
      # [c - L//2, c + L//2) per axis around a uniform centre c, clipped (ALGORITHMS.md D.8;
      # a segment of 1-d signals) | 0: off. Paper: 16 on CIFAR-10.
      cutout_size=0,
      randaugment_num_ops=0,  # N > 0: RandAugment first, N ops per uint8 image | 0: off
      randaugment_magnitude=4,  # M in [0, 30]: each op's strength (jaxsel.randaugment)
  ))

  config.mixing = ml_collections.ConfigDict(dict(
      name="none",  # none | mixup (one λ ~ Beta(α, α) and one pairing per batch)
      alpha=0.2,
  ))

  config.optimizer = ml_collections.ConfigDict(dict(
      name="sgd",  # sgd | adam | adamw
      learning_rate=0.05,
      momentum=0.9,  # in [0, 1); sgd only (0: plain SGD; nesterov=True needs > 0)
      nesterov=False,
      weight_decay=5e-4,  # coupled L2 (added to the gradient), as PyTorch SGD
  ))

  config.schedule = ml_collections.ConfigDict(dict(
      name="cosine",  # constant | cosine | linear | multistep | onecycle
      unit="epoch",  # 'epoch': lr changes once per epoch; 'step': every step
      lr_warmup_epochs=0.0,  # linear learning-rate warm-up, in epochs
      end_learning_rate=0.0,
      # multistep only, e.g. (60, 120, 160): increasing epochs of the run, also with
      # unit='step' (where a milestone may be a fraction of an epoch).
      milestone_epochs=(),
      decay_factor=0.2,  # multistep only
      # multistep only. True: each decay one epoch late, as the forgetting reference's
      # legacy scheduler.step(epoch) (ALGORITHMS.md D.7) | False: at the milestone epochs.
      late_multistep_decay=False,
      # linear only. True: the last epoch or step already runs at end_learning_rate,
      # lr0 + (end - lr0)·s/(T - 1) as the budgeted-training reference (ALGORITHMS.md B.6)
      # | False: the end rate is reached one position after the last.
      end_at_last_step=False,
      # onecycle only (PyTorch's OneCycleLR, cosine both ways, optax's
      # cosine_onecycle_schedule): from lr / div_factor up to lr over the first pct_start
      # of the run, then down to lr / (div_factor · final_div_factor).
      onecycle_pct_start=0.3,
      onecycle_div_factor=25.0,
      onecycle_final_div_factor=1e4,
  ))

  config.train = ml_collections.ConfigDict(dict(
      # The run's length: exactly one of the two is positive. With num_train_steps the
      # run stops exactly at that step and a per-step schedule spans exactly those steps.
      num_epochs=60,
      num_train_steps=0,
      batch_size=32,
      eval_batch_size=500,
      drop_remainder=False,  # False: pad + mask the last batch so every example is seen
      steps_per_chunk=16,  # batches per jitted call (one lax.scan)
  ))

  # Validation (and the log line) after every k-th epoch and after the epoch in which
  # every n-th step falls (0 = off), and always after the last epoch.
  config.eval = ml_collections.ConfigDict(dict(every_epochs=1, every_steps=0))

  config.metrics = ml_collections.ConfigDict(dict(
      num_bins=15,
      reference_binning=False,  # True: upper-exclusive bins that drop confidence 1.0
  ))

  # A checkpoint when any trigger fires (0 = off) and always after the last epoch. A killed
  # run resumes from its last checkpoint to the same numbers whatever the triggers.
  config.checkpoint = ml_collections.ConfigDict(dict(
      every_epochs=0, every_steps=0, every_seconds=60.0, max_to_keep=2))
  config.figures = True  # reliability diagram, training curves, method figures
  config.progress_bar = "auto"  # auto (when attached to a terminal) | on | off

  config.lock()
  return config
