"""The service functions the commands are thin over, called without click: start, status, analyze."""

from __future__ import annotations

import json

import torch

from sweep import space
from sweep.config import build_config
from sweep.service import analyze_sweep, start_sweep
from sweep.status import status_text


def test_start_status_and_analyze_run_as_plain_functions(tmp_path, valid_analysis):
    fixed = {"model": "resnet18", "weights": "none", "data": "synthetic:64", "image_size": 32, "max_train": 32,
             "max_val": 16, "epochs": 2, "n_trials": 2, "artifacts": str(tmp_path / "artifacts")}
    fixed["space"] = {"batch_size": space.parse_param("batch_size", "16")}
    config = build_config(None, fixed)
    url = f"sqlite:///{tmp_path / 'service.db'}"

    ready = start_sweep("plain", url, config, device=torch.device("cpu"), workers=0, doctor=False, quiet=True)
    assert "sweep worker --study plain --until-done" in ready  # created, nothing trained
    printed = start_sweep("plain", url, config, device=torch.device("cpu"), doctor=False, quiet=True)

    assert "study plain: 2/2 trials finished" in status_text(url, "plain")
    text, wrote = analyze_sweep(storage_url=url, study_name="plain", output_format="text")
    # start ends with the analysis the analyze command prints, then the commands to run next
    assert wrote == [] and printed.startswith(text) and printed[len(text):].startswith("\nNext\n  sweep analyze ")
    text, _ = analyze_sweep(storage_url=url, study_name="plain", output_format="json")
    result = valid_analysis(json.loads(text))
    assert result["n_trials"] == 2 and result["trials"][0]["params"]["batch_size"] == 16
