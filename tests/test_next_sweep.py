"""The next sweep from `sweep analyze --emit-config`: it keeps the first sweep's setup, and flags still override it."""

from __future__ import annotations

import dataclasses

import optuna
from click.testing import CliRunner

from sweep.cli import main
from sweep.config import FIXED_KEYS, SweepConfig
from sweep.study import stored_config
from synthetic_studies import SPACE, store_study, synthetic_records

# Every fixed setting away from its default, so a setting the emitted config drops shows as the default.
FIRST = SweepConfig(
    model="resnet18", weights="none", data="synthetic:64", image_size=48, max_train=40, max_val=None,
    val_fraction=0.3, epochs=4, n_trials=12, seed=7, optimizer="adamw", pruner="median", patience=3, min_delta=0.05,
    compile=True, skip_bad_images=True, checkpoints=False, checkpoint_every=30.0, keep_best=2, artifacts="/elsewhere/first.artifacts",
    stop_when="stalled", stop_after=4, confirm=False,
)


def sweep(storage: str, *args: str):
    result = CliRunner().invoke(main, [*args, "--storage", storage])
    assert result.exit_code == 0, result.output
    return result


def test_the_emitted_config_starts_the_next_sweep_on_the_first_sweeps_fixed_settings(tmp_path):
    defaults = SweepConfig()
    assert [key for key in FIXED_KEYS if getattr(FIRST, key) == getattr(defaults, key)] == []
    storage = f"sqlite:///{tmp_path / 'sweep.db'}"
    records, _ = synthetic_records(12, seed=0)
    store_study(records, SPACE, storage, "first", FIRST)
    next_toml = tmp_path / "next.toml"
    sweep(storage, "analyze", "--study", "first", "--emit-config", str(next_toml))
    assert "Fixed settings: study 'first''s" in next_toml.read_text()

    sweep(storage, "start", "--study", "next", "--config", str(next_toml), "--workers", "0", "--no-doctor")
    following = stored_config(optuna.load_study(study_name="next", storage=storage))
    # the artifact store is each study's own: the next one settles its own (here SWEEP_ARTIFACTS, as in conftest)
    kept = [key for key in FIXED_KEYS if key != "artifacts"]
    assert {key: getattr(following, key) for key in kept} == {key: getattr(FIRST, key) for key in kept}
    assert following.artifacts != FIRST.artifacts

    sweep(storage, "start", "--study", "flags", "--config", str(next_toml), "--epochs", "5", "--max-val", "30",
          "--workers", "0", "--no-doctor")
    overridden = stored_config(optuna.load_study(study_name="flags", storage=storage))
    assert (overridden.epochs, overridden.max_val) == (5, 30)
    assert dataclasses.replace(overridden, epochs=FIRST.epochs, max_val=FIRST.max_val,
                               artifacts=following.artifacts) == following
