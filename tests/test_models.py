"""models/: transfer model building, frozen stages with BatchNorm in eval, local and hub weights."""

from __future__ import annotations

import copy
import logging

import pytest
import torch
from safetensors.torch import save_file

from models import RESNET_STAGES, create_transfer_model, frozen_modules, pretrained_data_config, validate_model_name
from models.weights import pretrained_backbone_state

MODEL = "resnet18"
STAGE_PREFIXES = {1: ("conv1.", "bn1.", "layer1."), 2: ("layer2.",), 3: ("layer3.",), 4: ("layer4.",)}


def random_model(**kwargs) -> torch.nn.Module:
    kwargs.setdefault("num_classes", 5)
    return create_transfer_model(MODEL, weights="none", **kwargs)


def stage_of(name: str) -> int | None:
    return next((stage for stage, prefixes in STAGE_PREFIXES.items() if name.startswith(prefixes)), None)


def batchnorm_stats(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {
        name: tensor.clone()
        for name, tensor in model.state_dict().items()
        if name.endswith(("running_mean", "running_var"))
    }


@pytest.fixture(autouse=True)
def fresh_weights_cache():
    pretrained_backbone_state.cache_clear()
    yield
    pretrained_backbone_state.cache_clear()


@pytest.mark.parametrize("frozen_stages", range(RESNET_STAGES + 1))
def test_frozen_stages_have_no_gradients_and_the_rest_do(frozen_stages):
    model = random_model(frozen_stages=frozen_stages)
    for name, parameter in model.named_parameters():
        stage = stage_of(name)
        frozen = stage is not None and stage <= frozen_stages
        assert parameter.requires_grad is not frozen, name
    assert len(frozen_modules(model)) == (0 if frozen_stages == 0 else frozen_stages + 2)


def test_training_step_leaves_frozen_batchnorm_stats_and_weights_alone():
    torch.manual_seed(0)
    model = random_model(frozen_stages=2)
    model.train()
    assert all(not module.training for module in frozen_modules(model))
    assert all(not module.training for module in model.layer2.modules())
    assert model.layer3.training and model.layer3[0].bn1.training and model.training
    stats_before = batchnorm_stats(model)
    weights_before = {name: tensor.clone() for name, tensor in model.named_parameters()}

    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    images, labels = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    torch.nn.functional.cross_entropy(model(images), labels).backward()
    optimizer.step()

    stats_after = batchnorm_stats(model)
    for name, before in stats_before.items():
        changed = not torch.equal(before, stats_after[name])
        assert changed is (stage_of(name) in (3, 4)), name
    changed = {name for name, parameter in model.named_parameters() if not torch.equal(weights_before[name], parameter)}
    assert not {name for name in changed if stage_of(name) in (1, 2)}
    # timm zero-inits each block's last BN scale, so at random init only some tensors of a stage move
    assert {"fc.weight", "layer3.1.bn2.weight", "layer4.1.bn2.weight"} <= changed


def test_frozen_model_deep_copies_with_unchanged_state_dict_keys():
    frozen = random_model(frozen_stages=3)
    clone = copy.deepcopy(frozen)
    assert list(clone.state_dict()) == list(random_model().state_dict())
    clone.train()
    assert [module.training for module in frozen_modules(clone)] == [False] * 5
    assert all(module is not original for module, original in zip(frozen_modules(clone), frozen_modules(frozen)))
    assert clone.layer4.training
    clone.eval()
    clone.train()
    assert not clone.layer3.training and clone.layer4.training


def test_no_frozen_stages_means_no_frozen_modules():
    model = random_model(frozen_stages=0)
    model.train()
    assert frozen_modules(model) == []
    assert all(module.training for module in model.modules())


@pytest.mark.parametrize("frozen_stages", [-1, 5])
def test_frozen_stages_out_of_range_is_refused(frozen_stages):
    with pytest.raises(ValueError, match=rf"frozen_stages={frozen_stages}\b.*0.*4"):
        random_model(frozen_stages=frozen_stages)


def test_new_head_has_num_classes_and_dropout_before_it():
    model = random_model(num_classes=7, dropout=0.5, frozen_stages=RESNET_STAGES)
    assert model.drop_rate == 0.5
    assert model.get_classifier().out_features == 7
    images = torch.randn(2, 3, 32, 32)
    model.train()  # every BatchNorm is frozen, so only dropout can make two passes differ
    first, second = model(images), model(images)
    assert first.shape == (2, 7)
    assert not torch.allclose(first, second)
    model.eval()
    assert torch.equal(model(images), model(images))


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_local_weights_file_loads_the_backbone_and_a_new_head(tmp_path, suffix):
    torch.manual_seed(1)
    source = random_model(num_classes=5)
    path = tmp_path / f"backbone{suffix}"
    if suffix == ".safetensors":
        save_file(source.state_dict(), path)
    else:
        torch.save(source.state_dict(), path)

    loaded = create_transfer_model(MODEL, num_classes=3, weights=str(path), frozen_stages=1)
    loaded_state, source_state = loaded.state_dict(), source.state_dict()
    backbone = [name for name in source_state if not name.startswith("fc.")]
    assert backbone and all(torch.equal(loaded_state[name], source_state[name]) for name in backbone)
    assert loaded_state["fc.weight"].shape == (3, 512)


def test_missing_weights_file_names_the_path(tmp_path):
    path = tmp_path / "nowhere.safetensors"
    with pytest.raises(FileNotFoundError, match="nowhere.safetensors"):
        create_transfer_model(MODEL, num_classes=3, weights=str(path))


def test_weights_file_of_another_layout_is_refused_not_silently_ignored(tmp_path):
    path = tmp_path / "lightning.pth"
    torch.save({f"model.{name}": tensor for name, tensor in random_model().state_dict().items()}, path)
    with pytest.raises(ValueError, match=r"lightning\.pth' does not fit resnet18"):
        create_transfer_model(MODEL, num_classes=3, weights=str(path))


@pytest.mark.parametrize(
    "offline_env",
    [{"HF_ENDPOINT": "http://127.0.0.1:9"}, {"HF_HUB_OFFLINE": "1"}],
    ids=["endpoint-unreachable", "hf-hub-offline"],
)
def test_hub_weights_offline_warn_once_and_fall_back_to_random_init(monkeypatch, tmp_path, caplog, offline_env):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    for key, value in offline_env.items():
        monkeypatch.setenv(key, value)
    caplog.set_level(logging.WARNING, logger="models")

    first = create_transfer_model(MODEL, num_classes=4, weights="auto")
    second = create_transfer_model(MODEL, num_classes=4, weights=None)

    warnings = [record for record in caplog.records if record.name.startswith("models")]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "pretrained weights for resnet18 unavailable" in message
    assert "random init" in message and "--weights PATH" in message and "\n" not in message
    first.eval()
    assert first(torch.randn(2, 3, 32, 32)).shape == (2, 4)
    assert not torch.equal(first.conv1.weight, second.conv1.weight)  # two independent random inits


def test_hub_weights_offline_come_from_the_local_hub_cache_when_there(monkeypatch, tmp_path, caplog):
    cached = random_model().state_dict()
    snapshot = tmp_path / "models--timm--resnet18.a1_in1k" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    save_file(cached, snapshot / "model.safetensors")
    (tmp_path / "models--timm--resnet18.a1_in1k" / "refs").mkdir()
    (tmp_path / "models--timm--resnet18.a1_in1k" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    caplog.set_level(logging.WARNING, logger="models")

    model = create_transfer_model(MODEL, num_classes=2)

    assert not [record for record in caplog.records if record.name.startswith("models")]
    assert torch.equal(model.layer4[1].conv2.weight, cached["layer4.1.conv2.weight"])


@pytest.mark.parametrize(
    "name, complaint",
    [("resnt50", "unknown model 'resnt50'"), ("vit_small_patch16_224", "not a timm ResNet"),
     ("resnet50.nope", "unknown pretrained tag")],
)
def test_invalid_model_name_is_named_in_the_error(name, complaint):
    with pytest.raises(ValueError, match=complaint) as error:
        validate_model_name(name)
    assert "resnet50" in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(ValueError, match=name.replace(".", r"\.")):
        create_transfer_model(name, num_classes=3, weights="none")


@pytest.mark.parametrize("name", ["resnet18", "resnet50d", "resnet50.tv_in1k", "seresnext26d_32x4d"])
def test_resnet_family_names_are_accepted(name):
    validate_model_name(name)


def test_pretrained_data_config_is_what_the_weights_expect():
    config = pretrained_data_config(random_model())
    assert config == {
        "mean": pytest.approx((0.485, 0.456, 0.406)),
        "std": pytest.approx((0.229, 0.224, 0.225)),
        "interpolation": "bicubic",
        "crop_pct": pytest.approx(0.95),
    }
