"""`sweep export`: a trial's best weights as a folder timm reads back, the next sweep's --weights, and the study's
store bounded to the best --keep-best trials' weights."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load as load_bytes

import models
from sweep import space
from sweep import study as study_module
from sweep.analysis.curves import classify_curve
from sweep.artifacts import UNWANTED_VERDICTS, open_store, ranked_weights
from sweep.record import WEIGHTS
from sweep.cli import main
from sweep.config import build_config
from sweep.storage import open_storage
from sweep.worker import run_trials


def run_sweep(tmp_path, name: str, **overrides):
    fixed = {"model": "resnet18", "weights": "none", "data": "synthetic:64", "image_size": 32, "max_train": 32,
             "max_val": 16, "epochs": 3, "n_trials": 4, "keep_best": 2, "artifacts": str(tmp_path / "artifacts"),
             "pruner": "none", **overrides}
    fixed["space"] = {name: space.parse_param(name, text) for name, text in
                      {"batch_size": "16", "lr": "1e-3:1e-1", "frozen_stages": "0:1"}.items()}
    config = build_config(None, fixed)
    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    storage = open_storage(url)
    study, _ = study_module.create_or_resume(storage, name, config)
    run_trials(study, config, torch.device("cpu"), storage=storage)
    return url, study, config


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("swept")
    return (tmp_path, *run_sweep(tmp_path, "export"))


def export(url: str, *args: str):
    return CliRunner().invoke(main, ["export", "--storage", url, *args])


def test_only_the_best_trials_keep_their_weights_and_no_state_is_left(swept):
    tmp_path, url, study, config = swept
    ranked = ranked_weights(study.get_trials(), patience=config.patience, min_delta=config.min_delta)
    assert len(ranked) >= 2
    kept = {kept.weights["artifact_id"] for kept in ranked[:2]}
    assert {path.name for path in (tmp_path / "artifacts").iterdir()} == kept
    # a trial without weights never had them written: two earlier trials ranked before it when it ended
    for trial in study.trials:
        if WEIGHTS not in trial.user_attrs:
            mine = (not _wanted(trial, config), min(row["val_loss"] for row in trial.user_attrs["history"]))
            ahead = [k for k in ranked if k.number < trial.number and (not k.wanted, k.best_val_loss) < mine]
            assert len(ahead) >= 2, trial.number


def _wanted(trial, config) -> bool:
    verdict = classify_curve(trial.user_attrs["history"], patience=config.patience, min_delta=config.min_delta)
    return trial.state.name == "COMPLETE" and verdict.verdict not in UNWANTED_VERDICTS


def test_a_trial_that_ends_behind_the_best_keep_best_writes_no_weights(tmp_path, caplog):
    fixed = {"model": "resnet18", "weights": "none", "data": "synthetic:64", "image_size": 32, "max_train": 32,
             "max_val": 16, "epochs": 3, "n_trials": 2, "keep_best": 1, "artifacts": str(tmp_path / "artifacts"),
             "pruner": "none", "confirm": False}
    fixed["space"] = {name: space.parse_param(name, text) for name, text in
                      {"batch_size": "16", "lr": "1e-7:1e-1", "frozen_stages": "0"}.items()}
    config = build_config(None, fixed)
    storage = open_storage(f"sqlite:///{tmp_path / 'sweep.db'}")
    study, _ = study_module.create_or_resume(storage, "behind", config)
    study.enqueue_trial({"lr": 1e-7})  # learns nothing in 3 epochs: behind the baseline when it ends
    with caplog.at_level("INFO", logger="sweep"):
        run_trials(study, config, torch.device("cpu"), storage=storage)
    first, second = study.trials
    assert min(r["val_loss"] for r in first.user_attrs["history"]) < min(r["val_loss"] for r in
                                                                          second.user_attrs["history"])
    assert WEIGHTS in first.user_attrs and WEIGHTS not in second.user_attrs
    assert "trial 1: its best weights are not written: the best 1 finished trials rank before it" in caplog.text
    assert [path.name for path in (tmp_path / "artifacts").iterdir()] == [first.user_attrs[WEIGHTS]["artifact_id"]]
    result = export(f"sqlite:///{tmp_path / 'sweep.db'}", "--study", "behind", "--trial", "1", "--out",
                    str(tmp_path / "model"))
    assert result.exit_code == 1 and "ranked below the best --keep-best when it ended" in result.output


def test_export_writes_the_best_trial_as_a_timm_model_that_timm_and_the_next_sweep_read_back(swept):
    import timm

    tmp_path, url, study, config = swept
    out = tmp_path / "model"
    result = export(url, "--study", "export", "--out", str(out))
    assert result.exit_code == 0, result.output

    best = ranked_weights(study.get_trials(), patience=config.patience, min_delta=config.min_delta)[0]
    summary = json.loads((out / "trial.json").read_text())
    assert summary["trial"] == best.number and summary["verdict"] == best.verdict
    assert summary["params"] == study.trials[best.number].params
    assert summary["best_val_loss"] == best.best_val_loss == min(r["val_loss"] for r in
                                                                  study.trials[best.number].user_attrs["history"])
    with open_store(config.artifacts).open_reader(best.weights["artifact_id"]) as reader:
        trained = reader.read()

    reference = models.create_transfer_model("resnet18", num_classes=summary["num_classes"], weights="none")
    reference.load_state_dict(load_bytes(trained))
    images = torch.randn(2, 3, 32, 32)
    expected = reference.eval()(images)
    from_folder = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
    from_file = timm.create_model("resnet18", pretrained=True, num_classes=summary["num_classes"],
                                  pretrained_cfg_overlay=dict(file=str(out / "model.safetensors"),
                                                              num_classes=summary["num_classes"])).eval()
    with torch.no_grad():
        assert torch.equal(from_folder(images), expected.detach())
        assert torch.equal(from_file(images), expected.detach())
    assert timm.data.resolve_data_config({}, model=from_folder)["input_size"] == (3, 32, 32)
    # the next sweep starts from it through --weights: the backbone is the trained one
    warm = models.create_transfer_model("resnet18", num_classes=7, weights=str(out / "model.safetensors"))
    assert torch.equal(warm.state_dict()["layer4.1.conv2.weight"], reference.state_dict()["layer4.1.conv2.weight"])


def test_the_exported_config_says_what_this_model_is_not_timms_imagenet_card(swept):
    import timm

    tmp_path, url, study, config = swept
    out = tmp_path / "described"
    assert export(url, "--study", "export", "--trial", "1", "--out", str(out)).exit_code in (0, 1)
    if not (out / "config.json").exists():  # trial 1's weights were evicted: take the best
        assert export(url, "--study", "export", "--out", str(out)).exit_code == 0
    written = json.loads((out / "config.json").read_text())
    summary = json.loads((out / "trial.json").read_text())
    card = set(written["pretrained_cfg"])
    assert not card & {"tag", "paper_ids", "license", "origin_url", "hf_hub_id"}, card
    assert written["trained_by"] == {
        "tool": "plateau-sweep", "study": "export", "trial": summary["trial"], "started_from": "random init",
        "data": "synthetic:64", "num_classes": summary["num_classes"], "image_size": 32, "epochs": 3,
        "best_epoch": summary["best_epoch"], "best_val_loss": summary["best_val_loss"]}
    model = timm.create_model(f"local-dir:{out}", pretrained=True)  # timm still reads it
    assert model.num_classes == summary["num_classes"] and model.pretrained_cfg["input_size"] == (3, 32, 32)


def test_analyze_warm_start_exports_the_best_model_and_points_the_next_config_at_it(swept):
    tmp_path, url, study, config = swept
    toml = tmp_path / "next.toml"
    result = CliRunner().invoke(main, ["analyze", "--storage", url, "--study", "export", "--emit-config", str(toml),
                                       "--warm-start"])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "next.model"
    best = ranked_weights(study.get_trials(), patience=config.patience, min_delta=config.min_delta)[0]
    assert json.loads((folder / "trial.json").read_text())["trial"] == best.number
    assert f"wrote trial {best.number} " in result.output and f"wrote {toml} " in result.output
    following = build_config(toml)
    assert following.model == "resnet18" and following.weights == str((folder / "model.safetensors").resolve())
    # the next sweep's model starts from the exported backbone
    with open_store(config.artifacts).open_reader(best.weights["artifact_id"]) as reader:
        trained = load_bytes(reader.read())
    warm = models.create_transfer_model(following.model, num_classes=3, weights=following.weights)
    assert torch.equal(warm.state_dict()["layer4.1.conv2.weight"], trained["layer4.1.conv2.weight"])


def test_warm_start_without_emit_config_is_a_usage_error(swept):
    _, url, _, _ = swept
    result = CliRunner().invoke(main, ["analyze", "--storage", url, "--study", "export", "--warm-start"])
    assert result.exit_code == 2 and "--warm-start goes with --emit-config FILE" in result.output


def test_export_of_a_dropped_or_missing_trial_says_which_to_choose(swept):
    tmp_path, url, study, config = swept
    dropped = ranked_weights(study.get_trials(), patience=config.patience, min_delta=config.min_delta)[-1].number
    result = export(url, "--study", "export", "--trial", str(dropped), "--out", str(tmp_path / "dropped"))
    assert result.exit_code == 1
    assert f"weights of trial(s) {dropped} are no longer in the artifact store" in result.output
    assert len(result.output.strip().splitlines()) == 1
    result = export(url, "--study", "export", "--trial", "99", "--out", str(tmp_path / "none"))
    assert result.exit_code == 2
    assert "--trial 99: study 'export' has no such trial (its trials are 0-3)" in result.output


def test_export_of_a_study_without_checkpoints_is_one_line_exit_1(tmp_path):
    url, study, _ = run_sweep(tmp_path, "bare", checkpoints=False, n_trials=1, epochs=1)
    assert not (tmp_path / "artifacts").exists()
    assert WEIGHTS not in study.trials[0].user_attrs
    result = export(url, "--study", "bare", "--out", str(tmp_path / "model"))
    assert result.exit_code == 1
    assert result.output.strip() == ("Error: study 'bare' has no checkpoints (it was started with --no-checkpoints): "
                                     f"no trial's weights are in {tmp_path / 'artifacts'}, so there is no model to "
                                     "export")


def test_export_from_a_store_that_cannot_be_opened_is_one_line_exit_1(swept, monkeypatch):
    import sweep.artifacts

    def refuse(location):
        raise PermissionError(13, "Permission denied", location)

    monkeypatch.setattr(sweep.artifacts, "open_store", refuse)
    monkeypatch.setattr(sweep.artifacts, "_opened", {})
    tmp_path, url, _, _ = swept
    result = export(url, "--study", "export", "--out", str(tmp_path / "refused"))
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)  # a line, not a traceback
    assert result.output.strip().splitlines()[-1] == (
        f"Error: the artifact store {tmp_path / 'artifacts'} of study 'export' cannot be opened (see the line above), "
        "so there is no model to export")


def test_export_with_the_store_gone_or_emptied_says_so_and_where(tmp_path):
    import shutil

    url, study, _ = run_sweep(tmp_path, "gone", n_trials=1, epochs=1)
    folder = tmp_path / "artifacts"
    kept = [path for path in folder.iterdir()]
    assert kept, "the sweep kept its trial's weights"
    for path in kept:  # emptied: the trial the sweep kept has no weights there
        path.unlink()
    result = export(url, "--study", "gone", "--out", str(tmp_path / "model"))
    assert result.exit_code == 1
    assert result.output.strip() == ("Error: the weights of trial(s) 0, which the sweep kept, are missing from the "
                                     f"artifact store {folder}: it was emptied or replaced since")
    shutil.rmtree(folder)
    result = export(url, "--study", "gone", "--out", str(tmp_path / "model"))
    assert result.exit_code == 1
    assert result.output.strip() == (f"Error: the artifact store of study 'gone' is missing: no folder {folder}, "
                                     "where the study keeps its weights (restore it there, or export on the machine "
                                     "that has it)")
    assert not folder.exists()  # looking did not make an empty one


def test_a_checkpoint_folder_deleted_mid_sweep_is_made_again(tmp_path, caplog):
    import logging
    import shutil

    folder = tmp_path / "artifacts"
    deleted = []

    def delete_after_the_first_trial(study, trial):
        if not deleted:
            shutil.rmtree(folder)
            deleted.append(trial.number)

    fixed = {"model": "resnet18", "weights": "none", "data": "synthetic:64", "image_size": 32, "max_train": 32,
             "max_val": 16, "epochs": 1, "n_trials": 2, "keep_best": 2, "artifacts": str(folder), "pruner": "none"}
    config = build_config(None, fixed)
    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    storage = open_storage(url)
    study, _ = study_module.create_or_resume(storage, "deleted", config)
    with caplog.at_level(logging.WARNING, logger="sweep"):
        run_trials(study, config, torch.device("cpu"), storage=storage, callbacks=(delete_after_the_first_trial,))
    assert deleted == [0]
    second = study.trials[1]
    assert second.state.name == "COMPLETE" and WEIGHTS in second.user_attrs
    assert (folder / second.user_attrs[WEIGHTS]["artifact_id"]).is_file()
    remade = [r.getMessage() for r in caplog.records if "was deleted: made it again" in r.getMessage()]
    assert len(remade) == 1, [r.getMessage() for r in caplog.records]
    assert not [r for r in caplog.records if "checkpoints off" in r.getMessage()]


def test_export_into_an_unwritable_folder_is_one_line(tmp_path):
    from test_failure_lines import unwritable_folder

    url, _, _ = run_sweep(tmp_path, "locked", n_trials=1, epochs=1)
    out = unwritable_folder(tmp_path) / "model"
    result = export(url, "--study", "locked", "--out", str(out))
    assert result.exit_code == 1 and result.output.startswith(f"Error: cannot write {out} ("), result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_dashboard_download_of_weights_keep_best_removed_is_a_404_with_a_sentence_not_a_500(swept):
    import urllib.error
    import urllib.request

    from served import served_dashboard

    tmp_path, url, study, config = swept
    ranked = ranked_weights(study.get_trials(), patience=config.patience, min_delta=config.min_delta)
    kept, dropped = ranked[0], ranked[-1]
    with served_dashboard(url, "export") as served:
        with urllib.request.urlopen(f"{served.url}/api/studies/1?after=0", timeout=30) as answer:
            listed = json.loads(answer.read())

        def fetch(number: int, artifact_id: str):
            trial_id = study.trials[number]._trial_id
            try:
                with urllib.request.urlopen(f"{served.url}/artifacts/1/{trial_id}/{artifact_id}") as answer:
                    return answer.status, answer.read()
            except urllib.error.HTTPError as error:
                return error.code, error.read()

        assert listed["trials"]
        status, body = fetch(kept.number, kept.weights["artifact_id"])
        assert status == 200 and len(body) > 1000
        status, body = fetch(dropped.number, dropped.weights["artifact_id"])
        assert status == 404
        assert body.decode() == ("These weights were removed: a sweep keeps only its best 2 trials' weights "
                                 "(--keep-best). Download one of those, or export the best with `sweep export`.\n")
