"""Search-space flag syntax, the TOML config file, defaults and their errors."""

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from sweep import space
from sweep.config import ConfigError, SweepConfig, build_config


def test_flag_syntax_gives_optuna_distributions():
    assert space.parse_param("lr", "1e-5:1e-1") == FloatDistribution(1e-5, 1e-1, log=True)
    assert space.parse_param("batch_size", "16,32,64") == CategoricalDistribution([16, 32, 64])
    assert space.parse_param("frozen_stages", "0:4") == IntDistribution(0, 4)
    assert space.parse_param("frozen_stages", "0,2,4") == CategoricalDistribution([0, 2, 4])
    assert space.parse_param("scheduler", "none,cosine") == CategoricalDistribution(["none", "cosine"])
    assert space.parse_param("dropout", "0:0.5") == FloatDistribution(0.0, 0.5)


def test_single_value_fixes_a_parameter():
    fixed = space.parse_param("lr", "3e-4")
    assert fixed.single() and fixed.low == 3e-4
    assert space.parse_param("weight_decay", "0").single()
    assert space.parse_param("frozen_stages", "2") == IntDistribution(2, 2)


@pytest.mark.parametrize(
    "name, text, fragment",
    [
        ("lr", "0.1:0.001", "low must be below high (got low=0.1, high=0.001)"),
        ("lr", "-1e-3", "lr='-1e-3' is out of range"),
        ("lr", "abc", "lr='abc' is not a number"),
        ("scheduler", "none,linear", "scheduler='linear' is not accepted: expected none, cosine, step or plateau, or a comma-separated list"),
        ("frozen_stages", "0:5", "frozen_stages='5' is out of range: expected an integer from 0 to 4"),
        ("frozen_stages", "1.5", "not an integer"),
        ("batch_size", "16:64", "a range is not accepted here"),
        ("batch_size", "1", "out of range"),
        ("dropout", "1.0", "out of range"),
        ("weight_decay", "0:1e-2", "a log-scale range needs low > 0"),
        ("lr", "1e-3,1e-2", "a list is not accepted here"),
        ("lr", "20", "lr='20' is out of range: expected a number in (0, 10]"),
        ("weight_decay", "2", "weight_decay='2' is out of range: expected a number in [0, 1]"),
    ],
)
def test_bad_values_name_the_value_and_what_is_accepted(name, text, fragment):
    with pytest.raises(space.SpaceError) as error:
        space.parse_param(name, text)
    assert fragment in str(error.value)
    assert "\n" not in str(error.value)


def test_format_round_trips():
    for name, text in space.DEFAULT_SPACE_TEXT.items():
        distribution = space.parse_param(name, text)
        assert space.parse_param(name, space.format_param(distribution)) == distribution


def test_flags_override_file_and_file_overrides_defaults(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text(
        'epochs = 3\nmodel = "resnet18"\n'
        '[space]\nlr = "1e-4:1e-2"\nbatch_size = [8, 16]\nfrozen_stages = 2\n'
        "[baseline]\nlr = 1e-3\n"
    )
    config = build_config(path, {"epochs": 5, "space": {"lr": space.parse_param("lr", "1e-3:1e-1")}})
    assert config.epochs == 5  # flag wins
    assert config.model == "resnet18"  # file wins over default
    assert config.space["lr"] == FloatDistribution(1e-3, 1e-1, log=True)
    assert config.space["batch_size"] == CategoricalDistribution([8, 16])
    assert config.space["frozen_stages"] == IntDistribution(2, 2)
    assert config.space["dropout"] == SweepConfig().space["dropout"]  # untouched default
    assert config.baseline["lr"] == 1e-3  # given in the file
    assert config.baseline["frozen_stages"] == 2  # default baseline follows the fixed value


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("lrr = 1\n", "unknown key 'lrr'"),
        ("[space]\nfoo = '1:2'\n", "unknown parameter 'foo'"),
        ("[baseline]\nscheduler = 'linear'\n", "scheduler='linear' is not accepted"),
        ("epochs = = 3\n", "is not valid TOML"),
        ("epochs = 0\n", "epochs=0 is not accepted: expected an integer >= 1"),
        # every key's type is checked against the table the flags use; a bool is not an integer
        ("data = 5\n", "data=5 is not accepted: expected a string"),
        ('min_delta = "a"\n', "min_delta='a' is not accepted: expected a number in [0, 1)"),
        ('val_fraction = "x"\n', "val_fraction='x' is not accepted: expected a number in (0, 1)"),
        ("epochs = true\n", "epochs=True is not accepted: expected an integer >= 1"),
        ("n_trials = true\n", "n_trials=True is not accepted: expected an integer >= 1"),
        ("compile = 1\n", "compile=1 is not accepted: expected true or false"),
        ("max_train = 1.5\n", "max_train=1.5 is not accepted: expected an integer >= 2, or 0 for all images"),
        ('pruner = "fast"\n', "pruner='fast' is not accepted: expected quartile, median"),
    ],
)
def test_bad_config_files(tmp_path, text, fragment):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises((ConfigError, space.SpaceError)) as error:
        build_config(path)
    assert fragment in str(error.value)


def test_config_round_trips_through_the_study_form():
    config = build_config(None, {"epochs": 2, "max_train": 0, "space": {"lr": space.parse_param("lr", "1e-3")}})
    assert config.max_train is None
    again = SweepConfig.from_dict(config.to_dict())
    assert again == config
    assert config.differences(again) == []
    assert config.differences(build_config(None, {"epochs": 3})) == ["max_train", "epochs", "space", "baseline"]


def test_baseline_parsing_and_range_check():
    baseline = space.parse_baseline("lr=1e-4, dropout=0.5,frozen_stages=4,scheduler=none")
    assert baseline == {"lr": 1e-4, "dropout": 0.5, "frozen_stages": 4, "scheduler": "none"}
    with pytest.raises(space.SpaceError, match="not NAME=VALUE"):
        space.parse_baseline("lr")
    narrow = {"lr": space.parse_param("lr", "1e-3:1e-2")}
    assert space.check_baseline({"lr": 1e-4}, narrow) == ["lr=0.0001 is outside 0.001:0.01"]


def test_default_baseline_follows_fixed_params_and_given_baseline_must_be_a_choice():
    config = build_config(None, {"space": {"batch_size": space.parse_param("batch_size", "16"),
                                           "lr": space.parse_param("lr", "3e-3")}})
    assert config.baseline["batch_size"] == 16 and config.baseline["lr"] == 3e-3
    with pytest.raises(ConfigError, match="baseline batch_size=64 is not one of the sweep's choices 16,32"):
        build_config(None, {"space": {"batch_size": space.parse_param("batch_size", "16,32")},
                            "baseline": {"batch_size": 64}})



def test_settings_and_knobs_are_checked_by_one_bounds_type():
    from sweep.bounds import Bounds
    from sweep.config import SETTINGS

    assert all(type(entry) is Bounds for entry in (*SETTINGS.values(), *space.PARAMS.values()))
    for name, text in space.DEFAULT_SPACE_TEXT.items():
        for value in text.replace(":", ",").split(","):
            assert space.PARAMS[name].accepts(space.parse_value(name, value)), (name, value)
    assert space.DEFAULT_BASELINE.keys() == space.PARAMS.keys()
    assert all(space.PARAMS[name].accepts(value) for name, value in space.DEFAULT_BASELINE.items())


def test_every_fixed_setting_has_one_entry_in_the_settings_table():
    from sweep.config import FIXED_KEYS, SETTINGS

    assert set(SETTINGS) == set(FIXED_KEYS)
    for name, setting in SETTINGS.items():
        assert setting.accepts(getattr(SweepConfig(), name)), name  # the defaults pass their own check


def test_the_frozen_stage_maximum_is_the_models_own():
    from models.stages import RESNET_STAGES, STAGE_MODULE_NAMES

    assert RESNET_STAGES == len(STAGE_MODULE_NAMES)
    assert space.default_space()["frozen_stages"] == IntDistribution(0, RESNET_STAGES)
    assert space.parse_value("frozen_stages", str(RESNET_STAGES)) == RESNET_STAGES
    with pytest.raises(space.SpaceError, match="out of range"):
        space.parse_value("frozen_stages", str(RESNET_STAGES + 1))
