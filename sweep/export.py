"""``sweep export``: a trial's best weights from the study's artifact store as a folder timm reads back
(``model.safetensors`` + ``config.json``, written by timm's own ``save_for_hf``, its model card replaced by what is
true of this model), with ``trial.json`` beside them: the trial's params, verdict and best epoch."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import optuna

from sweep import study as study_module
from sweep.artifacts import (S3_SCHEME, DigestMismatch, Kept, location_of, open_study_store, ranked_weights,
                             verify_digest)
from sweep.errors import SweepFailed, UsageError
from sweep.record import TrialRecord
from sweep.storage import mask_secrets, open_storage

log = logging.getLogger("sweep")

TRIAL_FILE = "trial.json"

# timm's card of the architecture's pretrained weights (ImageNet tag, paper, licence, hub id): not this model's.
CARD_KEYS = ("tag", "hf_hub_id", "hf_hub_filename", "url", "file", "source", "license", "origin_url", "paper_ids",
             "paper_name", "description", "notes")


def export_model(storage_url: str, study_name: str, out: str | Path, trial_number: int | None = None) -> str:
    """Write the chosen trial's model into ``out`` (made if missing); returns the line the command prints.

    Default trial: the best complete one whose verdict is neither plateau nor diverged.
    """
    out = Path(out)
    storage = open_storage(storage_url, heartbeat=False)
    study, config = study_module.load(storage, study_name)
    ranked = ranked_weights(study.get_trials(deepcopy=False), patience=config.patience, min_delta=config.min_delta)
    location = location_of(config, storage)
    if not ranked or location is None:
        off = " (it was started with --no-checkpoints)" if not config.checkpoints else ""
        raise SweepFailed(f"study {study_name!r} has no checkpoints{off}: no trial's weights are in "
                          f"{mask_secrets(location or 'an artifact store')}, so there is no model to export")
    if not location.lower().startswith(S3_SCHEME) and not Path(location).is_dir():
        raise SweepFailed(f"the artifact store of study {study_name!r} is missing: no folder {location}, where the "
                          "study keeps its weights (restore it there, or export on the machine that has it)")
    opened = open_study_store(config, storage)
    if opened is None:
        raise SweepFailed(f"the artifact store {mask_secrets(location)} of study {study_name!r} cannot be opened (see "
                          "the line above), so there is no model to export")
    store = opened.store
    try:
        out.mkdir(parents=True, exist_ok=True)
        download = tempfile.TemporaryDirectory(dir=out, prefix=".download-")
    except OSError as error:
        raise SweepFailed(f"cannot write {out} ({error.strerror or error})") from None
    kept = {item.number for item in ranked[:config.keep_best]}
    with download as folder:
        chosen, weights_file = _download(store, _candidates(ranked, study, study_name, trial_number), Path(folder),
                                         kept, mask_secrets(location))
        model = _model(config, chosen, weights_file)
        _save_for_timm(model, config, out)
    trial = next(t for t in study.get_trials(deepcopy=False) if t.number == chosen.number)
    _describe(out / "config.json", config, study_name, chosen, TrialRecord.from_trial(trial).init, model.num_classes)
    summary = {"study": study_name, "trial": chosen.number, "state": chosen.state, "verdict": chosen.verdict,
               "best_epoch": chosen.weights["epoch"], "best_val_loss": chosen.best_val_loss,
               "params": dict(trial.params), "model": config.model, "num_classes": model.num_classes,
               "image_size": config.image_size}
    (out / TRIAL_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return (f"wrote trial {chosen.number} ({chosen.verdict}, best val loss {chosen.best_val_loss:.4g} at epoch "
            f"{chosen.weights['epoch']}) to {out / 'model.safetensors'}, {out / 'config.json'} and {out / TRIAL_FILE}")


def _candidates(ranked: list[Kept], study: optuna.Study, study_name: str, trial_number: int | None) -> list[Kept]:
    """The trials to try in order: the one asked for, or the wanted ones best first (the sweep keeps the best)."""
    if trial_number is not None:
        chosen = [kept for kept in ranked if kept.number == trial_number]
        if not chosen:
            numbers = sorted(trial.number for trial in study.get_trials(deepcopy=False))
            if trial_number not in numbers:
                raise UsageError(f"--trial {trial_number}: study {study_name!r} has no such trial "
                                 f"(its trials are {_span(numbers)})")
            raise SweepFailed(f"trial {trial_number} of study {study_name!r} has no weights (it did not finish, "
                              "trained no epoch, or ranked below the best --keep-best when it ended): trials with "
                              f"weights are {_span([k.number for k in ranked])}")
        return chosen
    wanted = [kept for kept in ranked if kept.wanted]
    if not wanted:
        raise SweepFailed(f"no complete trial of study {study_name!r} ended without a plateau or divergence: choose "
                          f"one with --trial N (best first: {', '.join(str(k.number) for k in ranked[:5])})")
    return wanted


def _download(store, candidates: list[Kept], folder: Path, kept_numbers: set[int], location: str) -> tuple[Kept, Path]:
    """The first candidate whose weights are in the store, checked against the digest recorded when they were
    written; ``kept_numbers``: the trials the sweep kept, whose weights missing means the store is not the one the
    sweep wrote."""
    missing = []
    for kept in candidates:
        path = folder / f"trial-{kept.number}.safetensors"
        try:
            optuna.artifacts.download_artifact(artifact_store=store, file_path=str(path),
                                               artifact_id=kept.weights["artifact_id"])
        except optuna.artifacts.exceptions.ArtifactNotFound:
            missing.append(kept.number)
            continue
        try:
            with open(path, "rb") as handle:
                verify_digest(kept.weights, handle, f"weights of trial {kept.number}")
        except DigestMismatch as error:
            raise SweepFailed(f"the weights of trial {kept.number} in the artifact store {location} are not the ones "
                              f"written ({error.algorithm} {error.found[:12]} where {error.written[:12]} was written): the store "
                              "changed them since; export another trial with --trial N") from None
        return kept, path
    lost = [number for number in missing if number in kept_numbers]
    if lost:
        raise SweepFailed(f"the weights of trial(s) {', '.join(map(str, lost))}, which the sweep kept, are missing "
                          f"from the artifact store {location}: it was emptied or replaced since")
    raise SweepFailed(f"the weights of trial(s) {', '.join(map(str, missing))} are no longer in the artifact store "
                      "(only the best --keep-best trials keep theirs): choose another with --trial N")


def _model(config, chosen: Kept, weights_file: Path):
    """The sweep's model for the trial, with its weights (head size read off the weights)."""
    from safetensors.torch import load_file

    import models

    state = load_file(str(weights_file))
    probe = models.create_transfer_model(config.model, num_classes=1, weights="none")
    head = (probe.pretrained_cfg.get("classifier") or "fc") + ".weight"
    model = models.create_transfer_model(config.model, num_classes=int(state[head].shape[0]), weights="none")
    model.load_state_dict(state)
    return model.eval()


def _save_for_timm(model, config, out: Path) -> None:
    from timm.models import save_for_hf

    from sweep.trial import model_data_config

    data_config = model_data_config(config.model)
    # the preprocessing the trial was trained and validated with, so that timm's resolve_data_config gives it back
    save_for_hf(model, str(out), safe_serialization=True, data_config={
        "input_size": (3, config.image_size, config.image_size), "mean": data_config["mean"],
        "std": data_config["std"], "interpolation": data_config["interpolation"],
        "crop_pct": data_config["crop_pct"]})


def _describe(path: Path, config, study_name: str, chosen: Kept, init: str | None, num_classes: int) -> None:
    """config.json says what this model is: timm's card of other weights out, where these came from in."""
    document = json.loads(path.read_text())
    for key in CARD_KEYS:
        document["pretrained_cfg"].pop(key, None)
    weights = ("random init" if init == "random" else
               config.weights if init == "pretrained" and config.weights not in ("auto", "none") else
               f"timm's pretrained {config.model}" if init == "pretrained" else config.weights)
    document["trained_by"] = {"tool": "plateau-sweep", "study": study_name, "trial": chosen.number,
                              "started_from": weights, "data": config.data, "num_classes": num_classes,
                              "image_size": config.image_size, "epochs": config.epochs,
                              "best_epoch": chosen.weights["epoch"], "best_val_loss": chosen.best_val_loss}
    path.write_text(json.dumps(document, indent=2) + "\n")


def _span(numbers: list[int]) -> str:
    if not numbers:
        return "none"
    if numbers == list(range(numbers[0], numbers[-1] + 1)) and len(numbers) > 3:
        return f"{numbers[0]}-{numbers[-1]}"
    return ", ".join(map(str, numbers))
