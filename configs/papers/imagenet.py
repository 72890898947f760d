"""ImageNet-1k settings shared by the paper configs: streaming input, host-side crops.

``imagenet2012`` (or any TFDS image classification dataset with ``train`` and
``validation`` splits, ``--config.dataset.name=...``) must be prepared as ArrayRecord first,
on a machine with the ImageNet archives (TFDS cannot download them) and TensorFlow::

    pip install 'jaxsel[tf]'
    # ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar in ~/tensorflow_datasets/downloads/manual
    tfds build imagenet2012 --file_format=array_record --data_dir=DATA_DIR
    # or, for a copy already prepared as TFRecord:
    tfds convert_format --root_data_dir=DATA_DIR --out_file_format=array_record

The decoded training set is ~150 GB at 224 px, far above any device, so it streams
(``dataset.storage='stream'``): each chunk's ids are read from the ArrayRecord files,
decoded and cropped on host threads. Training views are Inception-style random resized crops
(area 8-100 %, aspect 3/4-4/3) to 224 px plus a horizontal flip, keyed by (seed, epoch,
example id); evaluation and every scoring pass use the centre crop of 87.5 % of the shorter
side (224 of 256). The ``validation`` split (50,000 images) is the test set, since the
``test`` split has no labels.
"""

import ml_collections

NAME = "imagenet2012"
NUM_TRAIN = 1_281_167
IMAGE_SIZE = 224


def use_imagenet(config: ml_collections.ConfigDict, *, model: str) -> None:
  """Points ``config`` (unlocked) at ImageNet, streamed, with ``model`` (a ResNet) given
  the ImageNet stem."""
  config.dataset.update(name=NAME, test_split="validation", storage="stream",
                        image_size=IMAGE_SIZE, eval_crop_fraction=0.875, read_threads=16)
  config.model.name = model
  config.model.kwargs = ml_collections.ConfigDict(dict(conv_impl="auto", dtype="float32",
                                                       stem="imagenet"))
  # The crop and flip happen on the host; nothing more on the device.
  config.augmentation.name = "none"
  # A chunk of 224 px inputs is steps x batch x 602 KB on the host and on the device:
  # 4 x 256 rows are 617 MB.
  config.train.steps_per_chunk = 4
  config.train.eval_batch_size = 250
