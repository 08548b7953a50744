"""A grid-search oracle that survives being killed: every grid point once, resumed or not.

KerasTuner 1.4.8's ``GridSearchOracle`` keeps its position in the grid in memory only (a
linked list of trial ids that ``oracle.json`` does not save). A search killed mid-trial and
run again retries the interrupted trial and then fails with ``KeyError`` in that list; the
run after that stops early and reports a partial grid as finished
(keras-team/keras-tuner#1055, open; the fix proposed in #1056 is not released).

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
