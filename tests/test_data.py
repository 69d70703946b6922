"""data/: --data parsing, transforms normalised for the model, deterministic splits, loaders."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from PIL import Image

from data import (
    DATA_HELP,
    DataSpec,
    DataUnavailableError,
    build_datasets,
    build_loaders,
    create_transforms,
    parse_data_spec,
)
from models import create_transfer_model, pretrained_data_config

IMAGE_SIZE = 32


@pytest.fixture(scope="module")
def data_config() -> dict:
    return pretrained_data_config(create_transfer_model("resnet18", num_classes=10, weights="none"))


def digits(data_config, **kwargs):
    return build_datasets(DataSpec("digits"), image_size=IMAGE_SIZE, data_config=data_config, **kwargs)


def write_images(folder, count: int, shade: int) -> None:
    folder.mkdir(parents=True)
    for index in range(count):
        pixels = np.full((12, 12, 3), (shade + 7 * index) % 256, dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{index}.png")


def test_eval_transform_is_deterministic(data_config):
    image = digits(data_config).train.base[0][0]
    transform = create_transforms(data_config, IMAGE_SIZE, train=False)
    first, second = transform(image), transform(image)
    assert first.shape == (3, IMAGE_SIZE, IMAGE_SIZE)
    assert torch.equal(first, second)


def test_train_transform_augments(data_config):
    image = digits(data_config).train.base[0][0]
    transform = create_transforms(data_config, IMAGE_SIZE, train=True)
    random.seed(0)
    torch.manual_seed(0)
    first, second = transform(image), transform(image)
    assert first.shape == second.shape == (3, IMAGE_SIZE, IMAGE_SIZE)
    assert not torch.equal(first, second)


@pytest.mark.parametrize("custom", [False, True], ids=["pretrained", "custom"])
def test_eval_transform_normalises_with_the_given_mean_and_std(data_config, custom):
    config = dict(data_config, mean=(0.5, 0.4, 0.3), std=(0.25, 0.2, 0.1)) if custom else data_config
    pixels = create_transforms(config, IMAGE_SIZE, train=False)(Image.new("RGB", (48, 48), (128, 128, 128)))
    mean, std = torch.tensor(config["mean"]), torch.tensor(config["std"])
    expected = ((128 / 255 - mean) / std).view(3, 1, 1).expand_as(pixels)
    assert torch.allclose(pixels, expected, atol=1e-4)


def test_train_transform_normalises_with_the_model_pretrained_mean_and_std(data_config):
    # colour jitter rescales pixels at random, so read the mean and std off the final Normalize
    normalize = create_transforms(data_config, IMAGE_SIZE, train=True).transforms[-1]
    assert normalize.mean.tolist() == pytest.approx(list(data_config["mean"]))
    assert normalize.std.tolist() == pytest.approx(list(data_config["std"]))


def test_digits_split_is_deterministic_by_seed_disjoint_and_stratified(data_config):
    first, again, other = digits(data_config, seed=0), digits(data_config, seed=0), digits(data_config, seed=1)
    assert first.num_classes == 10 and first.class_names == [str(digit) for digit in range(10)]
    assert first.train.indices == again.train.indices and first.val.indices == again.val.indices
    assert first.train.indices != other.train.indices
    for split in (first, other):
        assert not set(split.train.indices) & set(split.val.indices)
        assert len(split.train) + len(split.val) == 1797
        assert len(split.val) == pytest.approx(0.25 * 1797, abs=1)
        assert sorted(set(split.val.targets)) == list(range(10))
    assert first.train.base is other.train.base  # images decoded once per process, whatever the seed


def test_validation_set_uses_the_eval_transform_and_train_set_augments(data_config):
    datasets = digits(data_config, max_train=8, max_val=8)
    assert torch.equal(datasets.val[0][0], datasets.val[0][0])
    random.seed(0)
    torch.manual_seed(0)
    assert not torch.equal(datasets.train[0][0], datasets.train[0][0])
    assert datasets.train[0][1] == datasets.train.targets[0]


def test_caps_keep_a_deterministic_subset(data_config):
    capped = digits(data_config, max_train=40, max_val=20, seed=3)
    assert (len(capped.train), len(capped.val)) == (40, 20)
    assert capped.train.indices == digits(data_config, max_train=40, max_val=20, seed=3).train.indices
    assert set(capped.train.indices) <= set(digits(data_config, seed=3).train.indices)
    assert sorted(set(capped.train.targets)) == list(range(10))


def test_synthetic_images_depend_on_the_class(data_config):
    datasets = build_datasets(parse_data_spec("synthetic:60"), image_size=IMAGE_SIZE, data_config=data_config)
    assert len(datasets.train) + len(datasets.val) == 60 and datasets.num_classes == 10
    images = datasets.train.base.images
    class_means = [np.mean([np.asarray(images[i], dtype=float).mean((0, 1)) for i in range(label, 60, 10)], 0)
                   for label in range(10)]
    assert min(np.abs(class_means[a] - class_means[b]).max() for a in range(10) for b in range(a)) > 5


@pytest.mark.parametrize(
    "text, expected",
    [("digits", DataSpec("digits")), ("", DataSpec("digits")), ("synthetic", DataSpec("synthetic", size=512)),
     ("synthetic:64", DataSpec("synthetic", size=64)), ("cifar10:/srv/cifar", DataSpec("cifar10", root="/srv/cifar")),
     ("cifar100:/srv/c100", DataSpec("cifar100", root="/srv/c100"))],
)
def test_parse_data_spec_accepts_the_documented_forms(text, expected):
    assert parse_data_spec(text) == expected


def test_parse_data_spec_takes_an_existing_directory_as_image_folder(tmp_path):
    assert parse_data_spec(str(tmp_path)) == DataSpec("imagefolder", root=str(tmp_path))


@pytest.mark.parametrize("text", ["mnist", "synthetic:0", "synthetic:many", "cifar100:", "/no/such/images"])
def test_parse_data_spec_names_the_bad_value(text):
    with pytest.raises(ValueError) as error:
        parse_data_spec(text)
    message = str(error.value)
    assert (text or "") in message and "\n" not in message
    if text == "mnist":
        assert DATA_HELP in message


def test_image_folder_with_class_subfolders_is_split(tmp_path, data_config):
    write_images(tmp_path / "cat", 6, shade=10)
    write_images(tmp_path / "dog", 6, shade=200)
    datasets = build_datasets(parse_data_spec(str(tmp_path)), image_size=IMAGE_SIZE, data_config=data_config)
    assert datasets.class_names == ["cat", "dog"] and datasets.num_classes == 2
    assert (len(datasets.train), len(datasets.val)) == (9, 3)
    assert not set(datasets.train.indices) & set(datasets.val.indices)
    image, label = datasets.val[0]
    assert image.shape == (3, IMAGE_SIZE, IMAGE_SIZE) and label in (0, 1)


def test_image_folder_with_train_and_val_keeps_them(tmp_path, data_config):
    for split, count in (("train", 5), ("val", 2)):
        write_images(tmp_path / split / "ant", count, shade=10)
        write_images(tmp_path / split / "bee", count, shade=200)
    write_images(tmp_path / "train" / "cow", 5, shade=100)  # val/ may lack a class
    datasets = build_datasets(parse_data_spec(str(tmp_path)), image_size=IMAGE_SIZE, data_config=data_config)
    assert datasets.class_names == ["ant", "bee", "cow"]
    assert (len(datasets.train), len(datasets.val)) == (15, 4)
    assert sorted(datasets.val.targets) == [0, 0, 1, 1]
    assert [datasets.val[i][1] for i in range(4)] == datasets.val.targets


def test_empty_image_folder_is_a_clear_error(tmp_path, data_config):
    (tmp_path / "train").mkdir()
    (tmp_path / "val").mkdir()
    with pytest.raises(ValueError, match=str(tmp_path)):
        build_datasets(parse_data_spec(str(tmp_path)), image_size=IMAGE_SIZE, data_config=data_config)


def test_cifar_without_local_copy_offline_names_the_root(tmp_path, monkeypatch, data_config):
    # a proxy nobody listens on: the same offline answer on any machine, and never a real download
    for variable in ("https_proxy", "HTTPS_PROXY"):
        monkeypatch.setenv(variable, "http://127.0.0.1:9")
    for variable in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(variable, raising=False)
    with pytest.raises(DataUnavailableError) as error:
        build_datasets(parse_data_spec(f"cifar10:{tmp_path}"), image_size=IMAGE_SIZE, data_config=data_config)
    assert isinstance(error.value, FileNotFoundError)
    message = str(error.value)
    assert str(tmp_path) in message and "cifar-10-batches-py" in message and "\n" not in message


def test_loaders_yield_batches_of_the_right_shape(data_config):
    datasets = digits(data_config, max_train=18, max_val=10)
    train, val = build_loaders(datasets, batch_size=8, seed=5)
    train_batches = list(train)
    assert [len(labels) for _, labels in train_batches] == [8, 8, 2]
    images, labels = train_batches[0]
    assert images.shape == (8, 3, IMAGE_SIZE, IMAGE_SIZE) and images.dtype == torch.float32
    assert labels.dtype == torch.int64
    assert torch.cat([labels for _, labels in val]).tolist() == datasets.val.targets  # in order
    assert train.num_workers == 0 and not train.pin_memory


def test_train_loader_order_follows_the_seed_and_never_leaves_a_batch_of_one(data_config):
    datasets = digits(data_config, max_train=17, max_val=4)

    def label_order(seed):
        return torch.cat([labels for _, labels in build_loaders(datasets, 8, seed=seed)[0]]).tolist()

    assert label_order(1) == label_order(1)
    assert label_order(1) != label_order(2)
    assert len(label_order(1)) == 16  # 17 = 8 + 8 + 1: the lone image would break BatchNorm
    assert len(list(build_loaders(datasets, 16, seed=1)[0])) == 1


def test_builtin_sets_use_gentle_augmentation_and_folders_use_timms_default():
    from data.transforms import GENTLE_AUGMENTATION

    config = {"mean": (0.5,) * 3, "std": (0.5,) * 3, "interpolation": "bilinear", "crop_pct": 1.0}
    gentle = repr(create_transforms(config, 32, train=True, gentle=True))
    default = repr(create_transforms(config, 32, train=True))
    assert f"scale={GENTLE_AUGMENTATION['scale']}" in gentle and "Flip" not in gentle
    assert "scale=(0.08, 1.0)" in default and "RandomHorizontalFlip" in default
    assert create_transforms(config, 32, train=False, gentle=True).__repr__() == create_transforms(config, 32, train=False).__repr__()
