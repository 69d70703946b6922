"""The sampler that proposes each trial's params: TPE for the best loss, with a space-filling share for the answer."""

from __future__ import annotations

import warnings
import zlib
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

# Every third search trial comes from a scrambled Sobol sequence: TPE crowds where the loss is low and leaves
# whole regions unvisited, and a region without runs can be neither named as a cause nor ruled out.
EXPLORE_EVERY = 3


class ExploringSampler(optuna.samplers.BaseSampler):
    """``search`` proposes most trials; ``explore`` proposes every ``every``-th by trial number.

    Optuna has no sampler that mixes two by a fixed share, so this one delegates by hand. The choice
    depends only on the trial number, so workers on one study agree on it without talking.
    """

    def __init__(self, search: optuna.samplers.BaseSampler, explore: optuna.samplers.BaseSampler, every: int):
        self.search = search
        self.explore = explore
        self.every = every

    def _for(self, trial: FrozenTrial) -> optuna.samplers.BaseSampler:
        return self.explore if trial.number % self.every == self.every - 1 else self.search

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._for(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self._for(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._for(trial).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._for(trial).before_trial(study, trial)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values) -> None:
        self._for(trial).after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.search.reseed_rng()
        self.explore.reseed_rng()


def search_sampler(config, seed: int) -> optuna.samplers.TPESampler:
    """The TPE that proposes the search trials (alone: what a user gets from Optuna's TPE)."""
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(3, config.n_trials // 3)),
                                      multivariate=True, constant_liar=True)


def create_sampler(config, worker: str = "", trials_so_far: int = 0) -> optuna.samplers.BaseSampler:
    """TPE seeded from the sweep's seed, the trials already in the study and the worker, with a Sobol share.

    The trials so far make a resumed sweep go on with new random draws instead of the ones it began
    with; the worker's name (host, pid) keeps parallel workers, of one launcher or several, apart.
    One process on a new study draws the same as any other with the same seed. The Sobol sequence is
    the study's, shared by every worker (its position is stored in the study), so its seed is the sweep's.
    """
    search = search_sampler(config, zlib.crc32(f"{config.seed}:{trials_so_far}:{worker}".encode()))
    with warnings.catch_warnings():  # stable for years; the "experimental" notice only alarms users
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        explore = optuna.samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=config.seed,
                                             warn_independent_sampling=False)
    return ExploringSampler(search, explore, EXPLORE_EVERY)
