"""Preprocessing: where each resize policy puts the pixels of a frame, and what the image
tensor receives for float and quantized inputs.

The frames are drawn so that every region has its own colour: the geometry is read
back from the colours, not recomputed with the same formulas the code uses.
"""

from __future__ import annotations

import numpy as np
import pytest

from movinet_edge.errors import EdgeError
from movinet_edge.manifest import Quantization
from movinet_edge.preprocess import InputEncoder, ResizePolicy, resize_square, square

RED, GREEN, BLUE, BLACK = (255, 0, 0), (0, 255, 0), (0, 0, 255), (0, 0, 0)


def bands(height: int, width: int, vertical: bool = True) -> np.ndarray:
    """Three equal bands, red | green | blue, side by side (vertical) or stacked."""
    frame = np.zeros((height, width, 3), np.uint8)
    n = width if vertical else height
    for i, colour in enumerate((RED, GREEN, BLUE)):
        part = slice(i * n // 3, (i + 1) * n // 3)
        if vertical:
            frame[:, part] = colour
        else:
            frame[part, :] = colour
    return frame


def colour_at(image: np.ndarray, y: int, x: int) -> tuple[int, ...]:
    return tuple(int(v) for v in image[y, x])


# --- geometry ---------------------------------------------------------------------------


def test_crop_keeps_the_centre_square_of_a_wide_frame_without_copying() -> None:
    frame = bands(120, 360)  # 16:9-ish: the centre 120x120 is exactly the green band
    sq = square(frame, ResizePolicy.CROP)
    assert sq.shape == (120, 120, 3)
    assert np.shares_memory(sq, frame)
    assert np.all(sq == GREEN)
    out = resize_square(frame, 60, ResizePolicy.CROP)
    assert out.shape == (60, 60, 3) and out.dtype == np.uint8
    assert np.all(out == GREEN)


def test_crop_of_a_tall_frame_and_an_odd_margin() -> None:
    frame = bands(361, 120, vertical=False)  # bands of 120, 120, 121 rows; a margin of 241 rows
    sq = square(frame, ResizePolicy.CROP)
    assert sq.shape == (120, 120, 3)
    # (361 - 120) // 2 = 120 rows off the top, 121 off the bottom: the green band exactly.
    assert np.all(sq == GREEN)


def test_pad_letterboxes_a_wide_frame_with_black_bars() -> None:
    frame = bands(120, 360)
    sq = square(frame, ResizePolicy.PAD)
    assert sq.shape == (360, 360, 3)
    assert np.all(sq[:120] == BLACK) and np.all(sq[240:] == BLACK)
    np.testing.assert_array_equal(sq[120:240], frame)  # nothing cut off
    out = resize_square(frame, 60, ResizePolicy.PAD)
    assert out.shape == (60, 60, 3)
    assert np.all(out[:19] == BLACK) and np.all(out[41:] == BLACK)
    row = 30  # the middle of the picture
    assert colour_at(out, row, 5) == RED and colour_at(out, row, 30) == GREEN and colour_at(out, row, 55) == BLUE


def test_pad_of_a_tall_frame_with_an_odd_margin() -> None:
    frame = np.full((101, 50, 3), 200, np.uint8)
    sq = square(frame, ResizePolicy.PAD)
    assert sq.shape == (101, 101, 3)
    # 51 columns of bars: 25 on the left, 26 on the right.
    assert np.all(sq[:, :25] == 0) and np.all(sq[:, 75:] == 0)
    assert np.all(sq[:, 25:75] == 200)


def test_stretch_keeps_the_whole_frame_and_ignores_the_aspect_ratio() -> None:
    frame = bands(120, 360)
    assert square(frame, ResizePolicy.STRETCH) is frame
    out = resize_square(frame, 60, ResizePolicy.STRETCH)
    assert out.shape == (60, 60, 3)
    # Each band keeps a third of the width; no black anywhere.
    assert np.all(out[:, 1:19] == RED) and np.all(out[:, 21:39] == GREEN) and np.all(out[:, 41:59] == BLUE)
    assert not np.any(np.all(out == BLACK, axis=-1))


@pytest.mark.parametrize("policy", list(ResizePolicy))
def test_a_square_frame_is_the_same_under_every_policy(policy: ResizePolicy) -> None:
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (172, 172, 3), dtype=np.uint8)
    out = resize_square(frame, 172, policy)
    np.testing.assert_array_equal(out, frame)
    assert out.flags.c_contiguous
    smaller = resize_square(frame, 86, policy)
    np.testing.assert_array_equal(smaller, resize_square(frame, 86, ResizePolicy.CROP))


def test_a_cropped_view_comes_back_contiguous() -> None:
    """The encoder reshapes into the tensor: a strided crop view must become a real array."""
    frame = bands(172, 300)
    out = resize_square(frame, 172, ResizePolicy.CROP)
    assert out.shape == (172, 172, 3) and out.flags.c_contiguous


@pytest.mark.parametrize("shape", [(120, 160), (120, 160, 4), (120, 160, 1)])
def test_a_frame_that_is_not_rgb_is_one_line(shape: tuple[int, ...]) -> None:
    with pytest.raises(EdgeError, match=r"expected an RGB frame of shape HxWx3, got \("):
        resize_square(np.zeros(shape, np.uint8), 64)


def test_policy_names() -> None:
    assert [p.value for p in ResizePolicy] == ["crop", "pad", "stretch"]
    assert ResizePolicy("pad") is ResizePolicy.PAD


# --- the image tensor ---------------------------------------------------------------------


@pytest.fixture
def rgb() -> np.ndarray:
    """Every byte value, as a 16x16 RGB image (256 pixels)."""
    values = np.arange(256, dtype=np.uint8)
    return np.stack([values, values[::-1], np.roll(values, 100)], axis=-1).reshape(16, 16, 3)


def tensor(dtype: type) -> np.ndarray:
    return np.full((1, 1, 16, 16, 3), 77, dtype)  # the model's [1, 1, N, N, 3], with old contents


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_float_inputs_get_values_in_0_1(rgb: np.ndarray, dtype: type) -> None:
    out = tensor(dtype)
    InputEncoder(np.dtype(dtype), None).encode_into(rgb, out)
    expected = rgb.astype(np.float64) / 255.0
    np.testing.assert_allclose(out[0, 0], expected, atol=1e-7 if dtype is np.float32 else 5e-4)
    assert out.min() == 0.0 and out.max() == 1.0


def test_uint8_input_with_scale_1_over_255_takes_the_bytes_as_they_are(rgb: np.ndarray) -> None:
    out = tensor(np.uint8)
    InputEncoder(np.dtype(np.uint8), Quantization(1 / 255, 0)).encode_into(rgb, out)
    np.testing.assert_array_equal(out[0, 0], rgb)
    # The manifest stores the scale as float32: 0.003921568859368563 is still "exactly" 1/255.
    out = tensor(np.uint8)
    InputEncoder(np.dtype(np.uint8), Quantization(0.003921568859368563, 0)).encode_into(rgb, out)
    np.testing.assert_array_equal(out[0, 0], rgb)


def test_int8_input_with_zero_point_minus_128_is_the_bytes_shifted(rgb: np.ndarray) -> None:
    out = tensor(np.int8)
    InputEncoder(np.dtype(np.int8), Quantization(1 / 255, -128)).encode_into(rgb, out)
    np.testing.assert_array_equal(out[0, 0].astype(int), rgb.astype(int) - 128)
    assert out.min() == -128 and out.max() == 127
    # Dequantized, that is the float model's input.
    real = (out[0, 0].astype(np.float64) + 128) / 255
    np.testing.assert_allclose(real, rgb / 255.0, atol=1e-12)


@pytest.mark.parametrize(
    "dtype, scale, zero_point",
    [
        (np.uint8, 1 / 200, 20),  # another tool's calibration: [0, 1] -> 20..220
        (np.int8, 1 / 127, 0),  # symmetric int8: [0, 1] -> 0..127
        (np.int8, 1 / 250, -125),
        (np.int16, 1 / 32767, 0),
    ],
)
def test_other_affine_quantizations_round_to_the_nearest_level(
    rgb: np.ndarray, dtype: type, scale: float, zero_point: int
) -> None:
    out = tensor(dtype)
    InputEncoder(np.dtype(dtype), Quantization(scale, zero_point)).encode_into(rgb, out)
    q = out[0, 0].astype(np.float64)
    real = (q - zero_point) * scale
    # Each value is the level nearest to byte/255: off by at most half a step.
    np.testing.assert_array_less(np.abs(real - rgb / 255.0), scale / 2 + 1e-9)
    assert q.min() == zero_point and q.max() == round(1 / scale) + zero_point


def test_values_beyond_the_dtype_saturate_instead_of_wrapping(rgb: np.ndarray) -> None:
    # [0, 1] at scale 1/510 needs 0..510: uint8 stops at 255, it must not wrap round to 0..254.
    out = tensor(np.uint8)
    InputEncoder(np.dtype(np.uint8), Quantization(1 / 510, 0)).encode_into(rgb, out)
    assert out[0, 0][rgb == 255].tolist() == [255] * int((rgb == 255).sum())
    assert out[0, 0][rgb == 100].tolist() == [200] * int((rgb == 100).sum())
    assert np.all(out[0, 0][rgb >= 128] == 255)


def test_a_quantized_input_without_parameters_is_one_line(rgb: np.ndarray) -> None:
    with pytest.raises(EdgeError, match="unsupported image input dtype uint8 without quantization parameters"):
        InputEncoder(np.dtype(np.uint8), None).encode_into(rgb, tensor(np.uint8))
