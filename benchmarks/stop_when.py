"""How many trials `--stop-when answered` needs, and whether its answer is the one the full budget gives.

    .venv/bin/python benchmarks/stop_when.py [--trials 120] [--seeds 5] [--stable-for 5]
    .venv/bin/python benchmarks/stop_when.py --storage sqlite:///plateau-sweep.db --study resnet-plateau

On synthetic studies (the tests' fixtures: trial 0 the baseline, the rest drawn at random, 5% of the
runs flipped) the answer is computed after each trial as the stop rule does (the quick factor
search on the trials finished so far); "stops at" is the first trial after which it has been the
same for --stable-for trials in a row, "same answer" whether that answer equals the full budget's
(the full analysis: the same parameters named), and "for good from" the trial after which the
factors named are the full budget's at every later step: a stop before it gives the full-budget
answer only where the answer happens to pass through it, since it changes again later. The target: the same factors with at most
half the trials. With --storage and --study a stored sweep is replayed in the order
its trials finished. Prints a markdown table; not a test.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from sweep.analysis import analyze, records_and_space_from_trials
from sweep.analysis.answer import answer_of, same_answer
from sweep.analysis.settled import Thresholds, answers_by_step, first_settled_step

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the synthetic sweeps are test fixtures
from synthetic_studies import synthetic_records  # noqa: E402

CASES = {
    "two causes (frozen_stages >= 3 or lr < 3e-5)": {},
    "one cause (frozen_stages >= 3)": {"rule": lambda params: params["frozen_stages"] >= 3},
    "lr overfits above 1e-2": {"outcome": lambda params: (
        "plateau" if params["frozen_stages"] >= 3 or params["lr"] < 3e-5
        else "overfitting" if params["lr"] > 1e-2 else "improving")},
    # a digit of a parameter that is no cause: random, and the same on every run of the benchmark
    "no cause (70% plateau at random)": {"rule": lambda params: int(params["dropout"] * 1e6) % 10 < 7},
}


def replay(finished, distributions, thresholds: Thresholds, stable_for: int, name: str) -> dict:
    started = time.perf_counter()
    answers = answers_by_step(finished, distributions, thresholds,
                              range(thresholds.min_trials, len(finished) + 1))
    seconds = (time.perf_counter() - started) / max(1, len(answers))
    stop = first_settled_step(answers, distributions, stable_for)
    full = answer_of(analyze(finished, distributions, study_name=name, patience=thresholds.patience,
                             min_delta=thresholds.min_delta, baseline_number=thresholds.baseline_number))
    at_stop = next((answer.factors for answer in answers if answer.n_finished == stop), None)
    # the floor of any stop rule: the trial after which the factors named are the full budget's for good
    settled = 1 + max((answer.n_finished for answer in answers if answer.factors.keys() != full.keys()),
                      default=thresholds.min_trials - 1)
    return {"n": len(finished), "stop": stop, "full": sorted(full), "settled": settled,
            "at_stop": sorted(at_stop) if at_stop is not None else None,
            "same": at_stop is not None and at_stop.keys() == full.keys(),
            "same_regions": at_stop is not None and same_answer(at_stop, full, distributions), "seconds": seconds}


def row(case: str, outcome: dict) -> str:
    stop = outcome["stop"]
    share = f"{stop / outcome['n']:.0%}" if stop else "-"
    same = "-" if stop is None else ("yes" if outcome["same"] else "no")
    regions = "-" if stop is None else ("yes" if outcome["same_regions"] else "no")
    settled = outcome["settled"] if outcome["settled"] <= outcome["n"] else "never"
    return (f"| {case} | {outcome['n']} | {stop or 'never'} | {share} | {', '.join(outcome['at_stop'] or []) or '-'} | "
            f"{', '.join(outcome['full']) or '-'} | {same} | {regions} | {settled} | {outcome['seconds'] * 1000:.0f} ms |")


def stored(storage: str, study_name: str):
    from sweep.study import load
    from sweep.study_record import baseline_number
    from sweep.storage import open_storage

    study, config = load(open_storage(storage), study_name)
    trials = sorted((t for t in study.get_trials(deepcopy=False) if t.datetime_complete is not None),
                    key=lambda t: t.datetime_complete)
    records, distributions = records_and_space_from_trials(trials)
    thresholds = Thresholds(config.patience, config.min_delta, baseline_number=baseline_number(trials))
    return records, distributions, thresholds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=120)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--stable-for", type=int, default=5)
    parser.add_argument("--storage", help="replay this stored sweep instead of the synthetic ones")
    parser.add_argument("--study")
    args = parser.parse_args()

    print("| study | trials | stops at | share of the budget | answer at the stop | full-budget answer | "
          "same factors | same regions | full-budget factors for good from | analysis per step |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    if args.storage:
        records, distributions, thresholds = stored(args.storage, args.study)
        print(row(args.study, replay(records, distributions, thresholds, args.stable_for, args.study)), flush=True)
        return
    summary = []
    for case, generator in CASES.items():
        for seed in range(args.seeds):
            records, space = synthetic_records(args.trials, seed=seed, **generator)
            outcome = replay(records, space, Thresholds(), args.stable_for, case)
            summary.append((case, outcome))
            print(row(f"{case}, seed {seed}", outcome), flush=True)
    print()
    print("| study | stopped | same factors when stopped | of those, within half the budget | "
          "median share of the budget | full-budget factors for good within half the budget |")
    print("|---|---|---|---|---|---|")
    for case in CASES:
        outcomes = [outcome for name, outcome in summary if name == case]
        stopped = [outcome for outcome in outcomes if outcome["stop"]]
        same = [outcome for outcome in stopped if outcome["same"]]
        shares = sorted(outcome["stop"] / outcome["n"] for outcome in stopped)
        median = f"{shares[len(shares) // 2]:.0%}" if shares else "-"
        settled = sum(outcome["settled"] <= outcome["n"] / 2 for outcome in outcomes)
        print(f"| {case} | {len(stopped)} of {len(outcomes)} | {len(same)} of {len(stopped)} | "
              f"{sum(o['stop'] <= o['n'] / 2 for o in same)} of {len(same)} | {median} | {settled} of {len(outcomes)} |")


if __name__ == "__main__":
    main()
