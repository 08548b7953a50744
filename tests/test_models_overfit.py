"""The three models learn: each tiny model overfits a small toy batch (its own file, so that
the parallel test workers run it beside the rest of test_models.py)."""

import keras
import pytest
from conftest import synthetic_heart_batch

from keras_runet.models import build_model, compile_model


@pytest.mark.parametrize("name", ["unet1", "shg", "runet"])
def test_tiny_model_overfits_a_small_batch(name):
    """A tiny model (half width, 64 x 64) learns 6 toy hearts to Dice > 0.9 in <= 400 steps."""
    keras.utils.set_random_seed(0)
    x, y = synthetic_heart_batch(6, 64)
    model = compile_model(build_model(name, input_shape=(64, 64, 1), width=0.5))
    targets = {o: y for o in model.output_names}
    dice = 0.0
    for step in range(20, 401, 20):
        model.fit(x, targets, batch_size=6, epochs=step, initial_epoch=step - 20, verbose=0)
        dice = model.evaluate(x, targets, verbose=0, return_dict=True)["segmentation_dice"]
        if dice > 0.9:
            break
    assert dice > 0.9, f"{name}: Dice {dice:.3f} after {step} steps"
