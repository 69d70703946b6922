"""The training loop's device paths: AMP (bf16, fp16 with GradScaler), channels_last, torch.compile.

On CPU the same code paths run with CPU autocast, so they are tested here; the CUDA tests run where a GPU is.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import models
from sweep.config import SweepConfig, build_config
from sweep.train import Acceleration, EpochRecord, acceleration_for, create_optimizer, fit

NO_CUDA = "no CUDA GPU on this machine: the CUDA paths run only where torch sees one"
CPU = torch.device("cpu")


def _loaders(n_train=48, n_val=16, size=32, classes=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n_train + n_val,), generator=generator)
    # class-dependent mean, so the loss can fall
    images = torch.randn(n_train + n_val, 3, size, size, generator=generator) + labels.view(-1, 1, 1, 1) * 0.5
    train = TensorDataset(images[:n_train], labels[:n_train])
    val = TensorDataset(images[n_train:], labels[n_train:])
    return DataLoader(train, batch_size=16, shuffle=True, generator=generator), DataLoader(val, batch_size=16)


def _tiny_net(classes=4):
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, classes),
    )


def _fit(model, device, acceleration, epochs=2):
    torch.manual_seed(0)
    train_loader, val_loader = _loaders()
    optimizer = create_optimizer(model, "sgd", 0.05, 1e-4)
    return fit(model, train_loader, val_loader, epochs=epochs, optimizer=optimizer,
               device=device, acceleration=acceleration)


def _assert_finite(records: list[EpochRecord]):
    assert records, "no epoch ran"
    for record in records:
        assert math.isfinite(record.train_loss) and math.isfinite(record.val_loss), record
        assert 0.0 <= record.val_acc <= 1.0


def test_cpu_default_is_fp32_without_channels_last():
    assert acceleration_for(CPU) == Acceleration()
    records = _fit(_tiny_net(), CPU, None)
    _assert_finite(records)


def test_cuda_default_picks_bf16_else_fp16(monkeypatch):
    # the choice of dtype needs no GPU: only what torch says about bf16 support
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert acceleration_for(torch.device("cuda")) == Acceleration(torch.bfloat16, channels_last=True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert acceleration_for(torch.device("cuda"), compile=True) == Acceleration(
        torch.float16, channels_last=True, compile=True
    )


def test_bf16_autocast_and_channels_last_run_on_cpu_with_finite_losses():
    model = _tiny_net()
    records = _fit(model, CPU, Acceleration(amp_dtype=torch.bfloat16, channels_last=True))
    _assert_finite(records)
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert model[0].weight.dtype == torch.float32  # autocast keeps fp32 master weights


def test_fp16_autocast_uses_a_grad_scaler_and_gives_finite_losses(monkeypatch):
    scalers = []
    real_scaler = torch.amp.GradScaler

    def recording_scaler(*args, **kwargs):
        scalers.append(real_scaler(*args, **kwargs))
        return scalers[-1]

    monkeypatch.setattr(torch.amp, "GradScaler", recording_scaler)
    records = _fit(_tiny_net(), CPU, Acceleration(amp_dtype=torch.float16, channels_last=True))
    _assert_finite(records)
    assert len(scalers) == 1 and scalers[0].get_scale() > 0


def test_compile_runs_and_reports_compile_time_apart():
    # aot_eager traces forward and backward as inductor does, without generating C++ (minutes on 2 cores)
    records = _fit(_tiny_net(), CPU, Acceleration(compile=True, compile_backend="aot_eager"), epochs=2)
    _assert_finite(records)
    assert records[0].compile_seconds > 0
    assert "compile_seconds" in records[0].as_dict()
    assert records[1].compile_seconds < records[0].compile_seconds


def test_uncompiled_history_has_no_compile_key():
    record = EpochRecord(1, 1.0, 1.0, 0.5, 0.1, 2.0)
    assert "compile_seconds" not in record.as_dict()


@pytest.mark.slow
def test_compile_with_inductor_on_cpu():
    """The real default backend: generates and builds C++ kernels, about a minute on 2 cores."""
    records = _fit(_tiny_net(), CPU, Acceleration(compile=True), epochs=1)
    _assert_finite(records)
    assert records[0].compile_seconds > 0


def test_compile_is_a_fixed_setting_with_a_default_for_old_studies():
    assert SweepConfig().compile is False
    stored = SweepConfig().to_dict()
    del stored["compile"]  # a study created before the setting existed
    assert SweepConfig.from_dict(stored).compile is False
    assert build_config(overrides={"compile": True}).compile is True


def test_compile_flag_reaches_the_config(monkeypatch):
    from click.testing import CliRunner

    from sweep import cli, config

    seen = {}

    def capture(config_file, overrides):
        seen.update(overrides)
        raise SystemExit(0)

    monkeypatch.setattr(config, "build_config", capture)
    result = CliRunner().invoke(cli.main, ["start", "--study", "s", "--storage", "sqlite:///:memory:", "--compile"])
    assert result.exit_code == 0, result.output
    assert seen["compile"] is True


@pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_cuda_amp_and_channels_last(dtype):
    if dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    model = models.create_transfer_model("resnet18", num_classes=4, weights="none")
    records = _fit(model, torch.device("cuda"), Acceleration(amp_dtype=dtype, channels_last=True))
    _assert_finite(records)
    assert torch.backends.cudnn.benchmark


@pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)
def test_cuda_default_path_with_compile():
    model = models.create_transfer_model("resnet18", num_classes=4, weights="none")
    records = _fit(model, torch.device("cuda"), acceleration_for(torch.device("cuda"), compile=True))
    _assert_finite(records)
    assert records[0].compile_seconds > 0
