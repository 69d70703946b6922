"""One table of optimizers and one of LR schedulers (sweep/optim.py): the config accepts, the space offers and the
training loop builds exactly the names in them, and a name added to a table is all three at once."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sweep import optim, space
from sweep.config import SETTINGS, ConfigError, SweepConfig, build_config
from sweep.train import create_optimizer, create_scheduler


def _sgd_step(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=0.1)


def test_config_space_and_training_read_the_same_names():
    assert set(SETTINGS["optimizer"].choices) == set(optim.OPTIMIZERS)
    assert set(space.PARAMS["scheduler"].choices) == set(optim.SCHEDULERS)
    assert set(space.default_space()["scheduler"].choices) == set(optim.SCHEDULERS)
    for name in optim.OPTIMIZERS:
        assert isinstance(create_optimizer(nn.Linear(2, 2), name, 0.1, 1e-4), torch.optim.Optimizer), name
    built = {name: create_scheduler(_sgd_step(nn.Linear(2, 2)), name, epochs=6) for name in optim.SCHEDULERS}
    assert [name for name, scheduler in built.items() if scheduler is None] == ["none"]


def test_importing_the_tables_does_not_import_torch():
    import subprocess
    import sys

    probe = "import sys, sweep.optim; print(any(m.split('.')[0] == 'torch' for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip() == "False"


def test_a_scheduler_added_to_the_table_is_accepted_offered_and_built(monkeypatch):
    monkeypatch.setitem(optim.SCHEDULERS, "linear", lambda optimizer, epochs, min_delta:
                        torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1.0, end_factor=0.1, total_iters=epochs))
    config = build_config(None, {"space": {"scheduler": space.parse_param("scheduler", "none,linear")},
                                 "baseline": {"scheduler": "linear"}})
    assert config.space["scheduler"].choices == ("none", "linear") and config.baseline["scheduler"] == "linear"
    assert isinstance(create_scheduler(_sgd_step(nn.Linear(2, 2)), "linear", epochs=4),
                      torch.optim.lr_scheduler.LinearLR)
    monkeypatch.delitem(optim.SCHEDULERS, "linear")
    with pytest.raises(space.SpaceError, match="scheduler='linear' is not accepted"):
        space.parse_param("scheduler", "none,linear")


def test_an_optimizer_added_to_the_table_is_accepted_and_built(monkeypatch):
    monkeypatch.setitem(optim.OPTIMIZERS, "sgd_plain", lambda params, lr, weight_decay:
                        torch.optim.SGD(params, lr=lr, weight_decay=weight_decay))
    assert SweepConfig(optimizer="sgd_plain").optimizer == "sgd_plain"
    optimizer = create_optimizer(nn.Linear(2, 2), "sgd_plain", 0.1, 0.0)
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["momentum"] == 0
    monkeypatch.delitem(optim.OPTIMIZERS, "sgd_plain")
    with pytest.raises(ConfigError, match="optimizer='sgd_plain' is not accepted: expected sgd or adamw"):
        SweepConfig(optimizer="sgd_plain")
