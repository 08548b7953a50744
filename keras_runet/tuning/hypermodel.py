"""RU-Net as a KerasTuner hypermodel: a trial's hyper-parameters on top of a base config."""

from __future__ import annotations

import keras_tuner

from keras_runet.config import TrainConfig
from keras_runet.training import build_and_compile
from keras_runet.tuning.space import SearchSpace, train_config_for


class RunetHyperModel(keras_tuner.HyperModel):
    """RU-Net as a KerasTuner hypermodel: ``dil``, ``shift`` (and optionally the learning
    rate and the ``coarse`` loss weight) from the trial, the rest from a base config.

    Args:
        space: the :class:`SearchSpace`.
        base_config: the :class:`~keras_runet.training.TrainConfig` every trial starts
            from (width, image size, epochs, batch size, seed, ...); its ``model`` must be
            ``"runet"``.
        name: the hypermodel's name.

    Example:
        >>> hm = RunetHyperModel(SearchSpace(dil_values=(11, 30)), TrainConfig(width=0.25))
        >>> config = hm.train_config(keras_tuner.HyperParameters())  # the first point
        >>> config.dil, config.width
        (11, 0.25)

        ``hm.build(hp)`` compiles the RU-Net of that config (``coarse`` and
        ``segmentation`` outputs).
    """

    def __init__(
        self,
        space: SearchSpace | None = None,
        base_config: TrainConfig | None = None,
        *,
        name: str = "runet_hypermodel",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.space = space or SearchSpace()
        self.base_config = base_config or TrainConfig()
        if self.base_config.model != "runet":
            raise ValueError(
                f"the search tunes RU-Net's dil and shift; base_config.model must be 'runet', "
                f"got {self.base_config.model!r}"
            )

    def train_config(self, hp: keras_tuner.HyperParameters) -> TrainConfig:
        """The :class:`TrainConfig` of a trial's hyper-parameters (:func:`train_config_for`)."""
        values = self.space.declare(hp)
        epochs = hp.values.get("tuner/epochs")  # Hyperband's budget for this trial
        return train_config_for(values, self.base_config, epochs=epochs)

    def build(self, hp):
        return build_and_compile(self.train_config(hp))
