"""The objective and the oracle of a study: random, grid, Hyperband or Bayesian search.

:func:`make_objective` gives the KerasTuner objective with an explicit direction (KerasTuner
would guess it from the metric's name; docs/design.md, known traps); :func:`make_oracle`
builds one of :data:`ORACLES`.

The grid oracle is :class:`ResumableGridSearchOracle`, not KerasTuner's: KerasTuner 1.4.8's
``GridSearchOracle`` keeps its position in the grid in memory only (a linked list of trial
ids that ``oracle.json`` does not save). A search killed mid-trial and run again retries
the interrupted trial and then fails with ``KeyError`` in that list; the run after that
stops early and reports a partial grid as finished (keras-team/keras-tuner#1055, open; the
fix proposed in #1056 is not released).

:class:`ResumableGridSearchOracle` keeps no position at all: it enumerates the grid in the
upstream order (every hyper-parameter's default first, the last one varying fastest) and
proposes the first point that no trial on file holds, whatever that trial's status
(completed, failed, or interrupted and waiting for its retry). So the grid it runs depends
only on the trials saved in the study, which KerasTuner writes as each trial starts and
ends; a trial left RUNNING by a kill at the wrong moment is queued for retry on reload.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import keras_tuner
from keras_tuner.engine import trial as trial_module

from keras_runet.tuning.space import SearchSpace

#: ``--objective`` name -> (metric reported to the oracle, direction).
OBJECTIVES = {
    "dice": ("val_segmentation_dice", "max"),
    "outliers": ("val_outlier_rate", "min"),
    "geometric": ("val_geometric_outlier_rate", "min"),
    "anatomical": ("val_anatomical_outlier_rate", "min"),
}
ORACLES = ("random", "grid", "hyperband", "bayesian")


def make_objective(name: str) -> keras_tuner.Objective:
    """The KerasTuner objective for ``name`` (a key of :data:`OBJECTIVES` or a metric name).

    The direction is always explicit (KerasTuner would guess it from the name).

    Example:
        >>> objective = make_objective("outliers")
        >>> objective.name, objective.direction
        ('val_outlier_rate', 'min')
    """
    by_metric = {metric: direction for metric, direction in OBJECTIVES.values()}
    if name in OBJECTIVES:
        metric, direction = OBJECTIVES[name]
    elif name in by_metric:
        metric, direction = name, by_metric[name]
    else:
        raise ValueError(
            f"unknown objective {name!r}; choose from {', '.join(OBJECTIVES)} "
            f"(or a metric: {', '.join(by_metric)})"
        )
    return keras_tuner.Objective(metric, direction=direction)


def make_oracle(
    name: str,
    objective: keras_tuner.Objective,
    *,
    max_trials: int = 10,
    seed: int | None = 0,
    space: SearchSpace | None = None,
    max_epochs: int = 10,
    hyperband_factor: int = 3,
    hyperband_iterations: int = 1,
    max_retries_per_trial: int = 0,
    bayesian_initial_points: int | None = None,
) -> keras_tuner.Oracle:
    """A KerasTuner oracle: ``"random"``, ``"grid"``, ``"hyperband"`` or ``"bayesian"``.

    Args:
        name: one of :data:`ORACLES`.
        objective: from :func:`make_objective`.
        max_trials: trials of the search (the grid stops earlier when it is exhausted;
            Hyperband's number of trials follows from its epochs and factor).
        seed: seeds the oracle's choices (same seed, same trials).
        space: checked for the grid oracle, which needs a finite space.
        max_epochs: Hyperband's largest epoch budget (the study's epochs).
        hyperband_factor, hyperband_iterations: Hyperband's.
        max_retries_per_trial: reruns of a trial that raised before it is FAILED.
        bayesian_initial_points: random trials before the Gaussian process takes over
            (KerasTuner's default: 3 per hyper-parameter).

    Returns:
        The oracle.
    """
    if max_trials is not None and int(max_trials) < 1:
        raise ValueError(f"max_trials must be at least 1, got {max_trials!r}")
    common = dict(objective=objective, seed=seed, max_retries_per_trial=max_retries_per_trial)
    if name == "random":
        return keras_tuner.oracles.RandomSearchOracle(max_trials=max_trials, **common)
    if name == "grid":
        if space is not None and not space.is_finite():
            raise ValueError(
                "the grid oracle needs a finite space: give shift_step (e.g. 0.2) or "
                "shift_values, and do not tune the learning rate or loss weights"
            )
        # Not keras_tuner's GridSearchOracle: it loses grid points when a search is killed
        # and resumed (keras-team/keras-tuner#1055); see ResumableGridSearchOracle.
        return ResumableGridSearchOracle(max_trials=max_trials, **common)
    if name == "bayesian":
        return keras_tuner.oracles.BayesianOptimizationOracle(
            max_trials=max_trials, num_initial_points=bayesian_initial_points, **common
        )
    if name == "hyperband":
        if int(max_epochs) < 2:
            raise ValueError(f"hyperband needs max_epochs >= 2, got {max_epochs!r}")
        return keras_tuner.oracles.HyperbandOracle(
            max_epochs=int(max_epochs),
            factor=hyperband_factor,
            hyperband_iterations=hyperband_iterations,
            **common,
        )
    raise ValueError(f"unknown oracle {name!r}; choose from {', '.join(ORACLES)}")


class ResumableGridSearchOracle(keras_tuner.Oracle):
    """Exhaustive search over a finite space, resumable after a kill.

    Takes the arguments of ``keras_tuner.Oracle`` (``objective``, ``max_trials``, ``seed``,
    ``max_retries_per_trial``, ...). ``max_trials`` None runs the whole grid.
    """

    def grid(self) -> Iterator[dict]:
        """The active values of every grid point, in the order they are tried."""
        hps = self.get_space()
        names, choices = [], []
        for hp in hps.space:
            values = list(hp.values)  # raises for a space that is not finite
            if hp.default in values:
                values.remove(hp.default)
            names.append(hp.name)
            choices.append([hp.default, *values])
        seen = set()
        for combo in itertools.product(*choices):
            point = hps.copy()
            point.values = dict(zip(names, combo, strict=True))
            active = {hp.name: point.values[hp.name] for hp in point.space if point.is_active(hp)}
            key = self._compute_values_hash(active)
            if key not in seen:
                seen.add(key)
                yield active

    def _taken(self) -> set[str]:
        return {self._compute_values_hash(t.hyperparameters.values) for t in self.trials.values()}

    def populate_space(self, trial_id):
        taken = self._taken()
        for values in self.grid():
            if self._compute_values_hash(values) not in taken:
                return {"status": trial_module.TrialStatus.RUNNING, "values": values}
        if self.ongoing_trials:
            return {"status": trial_module.TrialStatus.IDLE, "values": None}
        return {"status": trial_module.TrialStatus.STOPPED, "values": None}

    def reload(self):
        super().reload()
        # A kill between a trial's own file and oracle.json leaves a RUNNING trial that the
        # oracle's state does not list as ongoing: retry it too, rather than lose its point.
        queued = set(self._retry_queue)
        for trial_id, trial in sorted(self.trials.items()):
            if trial.status == trial_module.TrialStatus.RUNNING and trial_id not in queued:
                self._retry_queue.append(trial_id)
