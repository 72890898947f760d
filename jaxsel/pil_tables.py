"""Pillow's arithmetic for RandAugment, computed on the host once per value and image shape.

``jaxsel.randaugment`` reproduces Pillow 13 bit for bit. What cannot be done in float32 on
the device is computed here with Pillow's own arithmetic: the source pixel of every output
pixel of a nearest-neighbour affine transform (rotate, shear, translate), the lookup tables
of the value-wise ops, and the (lo, hi, x) triples where Pillow's double-precision
AutoContrast truncates one lower than the exact formula.
"""

import functools
import math
from collections.abc import Sequence

import numpy as np


def _coord(value: float) -> int:
  # Pillow's COORD: -1 for any negative coordinate, else truncation.
  return -1 if value < 0.0 else int(value)


def _affine_source(matrix: Sequence[float], height: int, width: int) -> np.ndarray:
  """int32 [H·W]: the flat source pixel of each output pixel of Pillow's nearest-neighbour
  ``Image.transform(size, AFFINE, matrix)``, -1 where it fills 0 (ImagingTransformAffine
  and ImagingScaleAffine of Geometry.c, with their exact arithmetic)."""
  a = [float(m) for m in matrix]
  source = np.full((height, width), -1, np.int64)
  if a[1] == 0 and a[3] == 0:
    # The "scale" path: doubles, accumulated pixel by pixel and row by row.
    columns, xo = [], a[2] + a[0] * 0.5
    for _ in range(width):
      columns.append(_coord(xo))
      xo += a[0]
    columns = np.asarray(columns)
    valid = (columns >= 0) & (columns < width)
    yo = a[5] + a[4] * 0.5
    for y in range(height):
      row = _coord(yo)
      if 0 <= row < height:
        source[y, valid] = row * width + columns[valid]
      yo += a[4]
    return source.reshape(-1).astype(np.int32)
  corners = ((0, 0), (width, height), (0, height), (width, 0))
  if not all(abs(x * a[0] + y * a[1] + a[2]) < 32768.0
             and abs(x * a[3] + y * a[4] + a[5]) < 32768.0 for x, y in corners):
    raise ValueError(f"an affine map of a {height}x{width} image reaching past 32768 pixels "
                     "(Pillow's floating-point path) is not supported")

  def fix(value: float) -> int:  # 16.16 fixed point, FLOOR(v · 65536 + 0.5)
    return math.floor(value * 65536.0 + 0.5)

  a0, a1, a3, a4 = fix(a[0]), fix(a[1]), fix(a[3]), fix(a[4])
  a2 = fix(a[2] + a[0] * 0.5 + a[1] * 0.5)
  a5 = fix(a[5] + a[3] * 0.5 + a[4] * 0.5)
  y, x = np.mgrid[0:height, 0:width].astype(np.int64)
  column = (a2 + y * a1 + x * a0) >> 16  # integer sums: the same as Pillow's accumulation
  row = (a5 + y * a4 + x * a3) >> 16
  valid = (column >= 0) & (column < width) & (row >= 0) & (row < height)
  source[valid] = (row * width + column)[valid]
  return source.reshape(-1).astype(np.int32)


def _rotate_matrix(angle: float, height: int, width: int) -> list[float] | None:
  """Pillow's ``img.rotate(angle)`` matrix (centre (W/2, H/2), no expand); None for its
  identity fast path (angle 0 modulo 360)."""
  angle = angle % 360.0
  if angle == 0:
    return None
  if angle in (90.0, 180.0, 270.0):
    # Pillow transposes there instead; RandAugment's angles stay within ±30°.
    raise ValueError(f"rotation by {angle}° is not supported")
  centre_x, centre_y = width / 2, height / 2
  angle = -math.radians(angle)
  matrix = [round(math.cos(angle), 15), round(math.sin(angle), 15), 0.0,
            round(-math.sin(angle), 15), round(math.cos(angle), 15), 0.0]
  matrix[2] = matrix[0] * -centre_x + matrix[1] * -centre_y + matrix[2]
  matrix[5] = matrix[3] * -centre_x + matrix[4] * -centre_y + matrix[5]
  matrix[2] += centre_x
  matrix[5] += centre_y
  return matrix


def geometric_source(name: str, v: float, height: int, width: int) -> np.ndarray:
  if name == "Rotate":
    matrix = _rotate_matrix(v, height, width)
    if matrix is None:
      return np.arange(height * width, dtype=np.int32)
  else:
    matrix = {"ShearX": (1, v, 0, 0, 1, 0), "ShearY": (1, 0, 0, v, 1, 0),
              "TranslateXabs": (1, 0, v, 0, 1, 0), "TranslateYabs": (1, 0, 0, 0, 1, v)}[name]
  return _affine_source(matrix, height, width)


def value_lut(name: str, v: float) -> np.ndarray:
  """int32 [256]: the lookup table of an op that maps each value on its own."""
  values = np.arange(256)
  if name == "Invert":
    lut = 255 - values
  elif name == "Posterize":
    bits = max(1, int(v))
    lut = values & ~(2 ** (8 - bits) - 1)
  elif name == "Solarize":
    lut = np.where(values < v, values, 255 - values)
  elif name == "SolarizeAdd":
    # The reference: add v to every pixel as floats, clip, store as uint8 (truncating),
    # then solarize at 128.
    added = np.clip(values + v, 0, 255).astype(np.uint8).astype(np.int64)
    lut = np.where(added < 128, added, 255 - added)
  else:
    raise ValueError(name)
  return lut.astype(np.int32)


@functools.cache
def autocontrast_corrections() -> np.ndarray:
  """Sorted int32 keys ``lo << 16 | hi << 8 | x`` (lo <= x <= hi) where Pillow's double
  arithmetic, ``int(x · scale + offset)``, gives one less than the exact
  ``(x − lo) · 255 // (hi − lo)``."""
  keys = []
  for span in range(1, 256):
    scale = 255.0 / span
    lo = np.arange(256 - span, dtype=np.int64)[:, None]
    x = lo + np.arange(span + 1)[None, :]
    offset = -lo * scale
    pillow = np.trunc(x * scale + offset)
    exact = (x - lo) * 255 // span
    low = pillow < exact
    keys.append(((lo << 16) | ((lo + span) << 8) | x)[low])
  return np.sort(np.concatenate(keys)).astype(np.int32)
