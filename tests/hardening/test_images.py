"""Image files from strangers: each is decoded to the right pixels or refused with one clear line.

The files are real: written with Pillow, or byte by byte where Pillow would not write them
(headers claiming 10 gigapixels, 16-bit RGB). They go through ``core.data.datasets.read_image`` (what
classification uses) and through ``folder:`` and ``zip:`` datasets.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image

from core.common.errors import DatasetError
from core.data import datasets
from tests.hardening import craft


@pytest.fixture(autouse=True)
def _fresh_dataset_cache():
    datasets.clear_cache()
    yield
    datasets.clear_cache()


def _refused(path, *words) -> str:
    with pytest.raises(DatasetError) as caught:
        datasets.read_image(path)
    message = str(caught.value)
    assert "\n" not in message and path.name in message, message
    for word in words:
        assert word in message, message
    return message


def _photo(size=(32, 24)) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


# ---- bad files ----------------------------------------------------------------------------------


def test_truncated_png_is_refused(tmp_path):
    data = craft.encode(_photo())
    path = craft.write(tmp_path / "cut.png", data[: len(data) // 2])
    _refused(path, "truncated")


def test_truncated_jpeg_is_refused(tmp_path):
    data = craft.encode(_photo((64, 64)), "JPEG", quality=95)
    path = craft.write(tmp_path / "cut.jpg", data[: len(data) // 2])
    _refused(path, "truncated")


@pytest.mark.parametrize("name", ["notes.png", "notes.jpg", "notes.gif"])
def test_text_file_with_an_image_extension_is_refused(tmp_path, name):
    path = craft.write(tmp_path / name, b"id,label\n1,cat\n" * 20)
    _refused(path, "not an image")


def test_empty_file_is_refused_as_empty(tmp_path):
    path = craft.write(tmp_path / "photo.png", b"")
    _refused(path, "empty (0 bytes)")


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        datasets.read_image(tmp_path / "nowhere.png")


@pytest.mark.parametrize("side", [100_000, 7_000])  # 10 Gpx: over Pillow's own limit; 49 Mpx: over ours only
def test_decompression_bomb_is_refused_from_its_header(tmp_path, side):
    # The file holds 64 bytes of pixel data: had the decoder run, it would report a truncated
    # file; a refusal that names the size proves the pixel count was checked first.
    path = craft.write(tmp_path / "bomb.png", craft.png_bytes(width=side, height=side, color_type=2))
    started = time.monotonic()
    message = _refused(path, f"{side}x{side}" if side < 50_000 else "too large")
    assert "truncated" not in message
    assert time.monotonic() - started < 2.0


# ---- unusual but valid files ---------------------------------------------------------------------


def test_16_bit_grayscale_is_scaled_to_8_bits(tmp_path):
    samples = np.array([[0, 257, 32896], [65535, 1000, 65280]], np.uint16)
    path = craft.write(tmp_path / "deep.png", craft.png_bytes(samples, bit_depth=16, color_type=0))
    pixels = datasets.read_image(path)
    assert pixels.dtype == np.uint8 and pixels.shape == (2, 3, 1)
    np.testing.assert_array_equal(pixels[..., 0], np.rint(samples / 257.0).astype(np.uint8))


def test_16_bit_rgb_is_scaled_to_8_bits(tmp_path):
    samples = np.zeros((2, 2, 3), np.uint16)
    samples[0, 0] = [65535, 0, 32896]
    samples[1, 1] = [256, 51400, 65535]
    path = craft.write(tmp_path / "deep-rgb.png", craft.png_bytes(samples, bit_depth=16, color_type=2))
    pixels = datasets.read_image(path)
    assert pixels.dtype == np.uint8 and pixels.shape == (2, 2, 3)
    expected = samples / 257.0
    assert np.abs(pixels.astype(float) - expected).max() <= 1.0


def test_palette_image_is_expanded_to_rgb(tmp_path):
    image = Image.new("P", (3, 2))
    image.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (253 * 3))
    image.putpixel((1, 0), 1)
    image.putpixel((2, 1), 2)
    pixels = datasets.read_image(craft.write(tmp_path / "palette.png", craft.encode(image)))
    assert pixels.shape == (2, 3, 3)
    assert pixels[0, 0].tolist() == [255, 0, 0]
    assert pixels[0, 1].tolist() == [0, 255, 0]
    assert pixels[1, 2].tolist() == [0, 0, 255]


def test_palette_transparency_becomes_white(tmp_path):
    image = Image.new("P", (2, 1))
    image.putpalette([0, 0, 0, 0, 0, 255] + [0] * (254 * 3))
    image.putpixel((1, 0), 1)
    path = craft.write(tmp_path / "palette-alpha.png", craft.encode(image, transparency=0))
    pixels = datasets.read_image(path)
    assert pixels[0, 0].tolist() == [255, 255, 255] and pixels[0, 1].tolist() == [0, 0, 255]


def test_rgba_is_composited_on_white(tmp_path):
    rgba = np.zeros((1, 3, 4), np.uint8)
    rgba[0, 0] = [10, 20, 30, 255]  # opaque: kept
    rgba[0, 1] = [0, 0, 0, 128]  # half-transparent black over white: mid grey
    rgba[0, 2] = [200, 0, 0, 0]  # fully transparent: white, whatever its colour
    pixels = datasets.read_image(craft.write(tmp_path / "alpha.png", craft.encode(Image.fromarray(rgba, "RGBA"))))
    assert pixels.shape == (1, 3, 3)
    assert pixels[0, 0].tolist() == [10, 20, 30]
    assert all(abs(value - 127) <= 1 for value in pixels[0, 1].tolist())
    assert pixels[0, 2].tolist() == [255, 255, 255]


def test_cmyk_jpeg_is_converted_to_rgb(tmp_path):
    image = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # no cyan, full magenta and yellow: red
    image.paste((255, 0, 255, 0), (8, 0, 16, 16))  # full cyan and yellow: green
    path = craft.write(tmp_path / "print.jpg", craft.encode(image, "JPEG", quality=100))
    assert Image.open(path).mode == "CMYK"
    pixels = datasets.read_image(path)
    assert pixels.shape == (16, 16, 3)
    assert np.abs(pixels[4, 2].astype(int) - [255, 0, 0]).max() <= 8
    assert np.abs(pixels[4, 12].astype(int) - [0, 255, 0]).max() <= 8


def test_animated_gif_gives_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (6, 5), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(path).n_frames == 3
    pixels = datasets.read_image(path)
    assert pixels.shape == (5, 6, 3)
    assert (pixels.reshape(-1, 3) == [255, 0, 0]).all()


def test_exif_rotation_is_applied(tmp_path):
    image = Image.new("L", (4, 2), 0)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    path = craft.write(tmp_path / "rotated.jpg", craft.encode(image, "JPEG", exif=exif))
    assert datasets.read_image(path).shape == (4, 2, 1)


# ---- the same files inside folder and zip datasets -------------------------------------------------


def _bad_files():
    photo = craft.encode(_photo())
    return {
        "truncated.png": (photo[: len(photo) // 2], "truncated"),
        "notes.jpg": (b"just text", "not an image"),
        "blank.png": (b"", "empty (0 bytes)"),
        "bomb.png": (craft.png_bytes(width=100_000, height=100_000), "too large"),
    }


@pytest.mark.parametrize("name", list(_bad_files()))
def test_a_bad_image_in_a_folder_dataset_is_named(tmp_path, name):
    data, word = _bad_files()[name]
    root = craft.labeled_folder(tmp_path / "pets")
    craft.write(root / "b" / name, data)
    with pytest.raises(DatasetError) as caught:
        datasets.load_dataset(f"folder:{root}")
    message = str(caught.value)
    assert "\n" not in message and name in message and word in message, message


@pytest.mark.parametrize("name", list(_bad_files()))
def test_a_bad_image_in_a_zip_dataset_is_named(tmp_path, name):
    data, word = _bad_files()[name]
    members = {**craft.labeled_members(), f"b/{name}": data}
    path = craft.zip_file(tmp_path / "pets.zip", members)
    with pytest.raises(DatasetError) as caught:
        datasets.load_dataset(f"zip:{path}")
    message = str(caught.value)
    assert "\n" not in message and name in message and word in message, message


def test_a_folder_of_unusual_modes_loads_with_the_right_pixels(tmp_path):
    root = tmp_path / "modes"
    palette = Image.new("P", (8, 8), 1)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * (254 * 3))
    rgba = np.zeros((8, 8, 4), np.uint8)  # fully transparent: white
    gif_frames = [Image.new("L", (8, 8), value) for value in (40, 220)]
    gif = root / "b" / "anim.gif"
    gif.parent.mkdir(parents=True)
    gif_frames[0].save(gif, save_all=True, append_images=gif_frames[1:])
    craft.write(root / "a" / "palette.png", craft.encode(palette))
    craft.write(root / "a" / "alpha.png", craft.encode(Image.fromarray(rgba, "RGBA")))
    craft.write(root / "a" / "cmyk.jpg", craft.encode(Image.new("CMYK", (8, 8), (0, 0, 0, 0)), "JPEG", quality=100))
    craft.write(root / "b" / "deep.png", craft.png_bytes(np.full((8, 8), 65535, np.uint16), bit_depth=16))
    craft.write(root / "b" / "grey.png", craft.gray_png(90))
    data = datasets.load_dataset(f"folder:{root}")
    images = np.concatenate([data.x_train, data.x_test])
    labels = np.concatenate([data.y_train, data.y_test])
    assert images.shape == (6, 8, 8, 3) and images.dtype == np.uint8  # colour present: all RGB
    assert data.class_names == ("a", "b")
    colours = sorted(tuple(image[0, 0].tolist()) for image in images)
    assert colours == sorted([(255, 0, 0), (255, 255, 255), (255, 255, 255), (40, 40, 40), (255, 255, 255),
                              (90, 90, 90)])
    assert sorted(labels.tolist()) == [0, 0, 0, 1, 1, 1]


# ---- single uploads on the Classify page (open to visitors of the public demo) ----------------------
# core.app.classify_view.decode_image turns an uploaded file's bytes into pixels for classification. It
# must refuse what read_image refuses and give the pixels read_image gives.


def _dashboard_refuses(data: bytes, *words: str) -> str:
    from core.app import classify_view
    from core.common.errors import UserError

    with pytest.raises(UserError) as caught:
        classify_view.decode_image(data, "upload.png")
    message = str(caught.value)
    assert "\n" not in message, message
    for word in words:
        assert word in message, message
    return message


def test_upload_decompression_bomb_is_a_user_error():
    # Over Pillow's own hard limit: Pillow raises DecompressionBombError, which is no UserError.
    _dashboard_refuses(craft.png_bytes(width=100_000, height=100_000, color_type=2), "upload.png")


def test_upload_over_the_pixel_limit_is_refused_before_decoding():
    # A valid 7000x7000 PNG of 60 kB that decodes to 49 Mpx: over MAX_IMAGE_PIXELS (40 Mpx), under
    # Pillow's warning threshold, so only our own limit stops it.
    from core.data.loaders.image_files import MAX_IMAGE_PIXELS

    data = craft.png_bytes(np.zeros((7000, 7000), np.uint8))
    assert len(data) < 200_000 and MAX_IMAGE_PIXELS < 7000 * 7000
    _dashboard_refuses(data, "7000x7000")


def test_upload_gives_the_same_pixels_as_read_image(tmp_path):
    from core.app import classify_view

    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[2:6, 3:5] = [0, 0, 0, 255]  # black ink on a transparent canvas (stored as transparent black)
    files = {
        "ink.png": craft.encode(Image.fromarray(rgba, "RGBA")),
        "deep.png": craft.png_bytes(np.array([[0, 30000], [60000, 65535]], np.uint16), bit_depth=16),
        "palette.png": craft.encode(Image.new("P", (4, 4), 0)),
        "cmyk.jpg": craft.encode(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG", quality=100),
    }
    for name, data in files.items():
        expected = datasets.read_image(craft.write(tmp_path / name, data))
        np.testing.assert_array_equal(classify_view.decode_image(data, name), expected, err_msg=name)
