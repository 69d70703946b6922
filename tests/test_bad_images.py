"""Image folders with files that cannot be decoded, or with one class: stopped before any training with their names,
or trained without them when asked; never a sweep that dies at trial 0."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from data import UnreadableImages, build_datasets, parse_data_spec
from sweep.cli import main

DATA_CONFIG = {"mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25), "interpolation": "bilinear", "crop_pct": 1.0}


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the check's memory, away from the user's


def image_folder(root, classes=("cat", "dog"), per_class: int = 8):
    for index, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for number in range(per_class):
            pixels = np.full((16, 16, 3), (40 * index + 9 * number) % 256, dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{number}.png")
    return root


def break_three(root) -> list[str]:
    """A truncated JPEG, a zero-byte file and text saved as .png, as users' folders have them."""
    Image.fromarray(np.zeros((64, 64, 3), dtype=np.uint8)).save(root / "cat" / "whole.jpg")
    data = (root / "cat" / "whole.jpg").read_bytes()
    (root / "cat" / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (root / "cat" / "whole.jpg").unlink()
    (root / "dog" / "empty.jpg").write_bytes(b"")
    (root / "dog" / "notes.png").write_text("not an image, saved with the wrong name\n")
    return ["cat/truncated.jpg", "dog/empty.jpg", "dog/notes.png"]


def build(root, **kwargs):
    return build_datasets(parse_data_spec(str(root)), image_size=32, data_config=DATA_CONFIG, max_train=None,
                          max_val=None, **kwargs)


def test_unreadable_files_are_named_and_counted_before_training(tmp_path):
    root = image_folder(tmp_path / "images")
    broken = break_three(root)
    with pytest.raises(UnreadableImages) as error:
        build(root)
    message = str(error.value)
    assert "3 unreadable image file(s)" in message and all(name in message for name in broken)
    assert "--skip-bad-images" in message


def test_skip_bad_images_trains_on_the_rest(tmp_path, caplog):
    root = image_folder(tmp_path / "images")
    break_three(root)
    datasets = build(root, skip_bad_images=True)
    assert len(datasets.train) + len(datasets.val) == 16
    assert all(datasets.train[i][0].shape == (3, 32, 32) for i in range(len(datasets.train)))
    assert "skipped 3 unreadable image file(s)" in caplog.text


def test_a_repaired_file_is_checked_again(tmp_path):
    root = image_folder(tmp_path / "images")
    break_three(root)
    with pytest.raises(UnreadableImages):
        build(root)
    for name in ("cat/truncated.jpg", "dog/empty.jpg", "dog/notes.png"):
        Image.fromarray(np.ones((16, 16, 3), dtype=np.uint8)).save(root / name, format="PNG")
    from data.sources import _image_folder

    _image_folder.cache_clear()
    assert len(build(root).train) > 0  # the cache keys on size and mtime, so the repaired files pass


@pytest.mark.parametrize("doctor", [[], ["--no-doctor"]])
def test_sweep_start_stops_with_the_names_exit_2(tmp_path, doctor):
    root = image_folder(tmp_path / "images")
    broken = break_three(root)
    result = CliRunner().invoke(main, ["start", "--study", "bad", "--storage", f"sqlite:///{tmp_path / 's.db'}",
                                       "--data", str(root), "--model", "resnet18", "--weights", "none",
                                       "--epochs", "1", "--n-trials", "1", "--quiet", *doctor])
    assert result.exit_code == 2, result.output
    assert "unreadable image file(s)" in result.output and broken[0] in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("doctor", [[], ["--no-doctor"]])
def test_a_one_class_folder_is_a_usage_error_that_names_the_class_count(tmp_path, doctor):
    root = image_folder(tmp_path / "images", classes=("cat",))
    result = CliRunner().invoke(main, ["start", "--study", "one", "--storage", f"sqlite:///{tmp_path / 's.db'}",
                                       "--data", str(root), "--model", "resnet18", "--weights", "none", "--quiet",
                                       *doctor])
    assert result.exit_code == 2, result.output
    assert "has 1 class (cat)" in result.output and "at least 2" in result.output
    assert "normalisation" not in result.output
