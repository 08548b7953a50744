"""Counting the background in the Dice loss or not: what the first U-Net learns.

Trains U-Net 1 and RU-Net (half width, 64 x 64) on the test suite's toy batch of 8 ellipse
"hearts" (``tests/conftest.py``: 15 % of the pixels are heart) with the multi-class Dice
loss, background excluded (the default) and included, and prints every 25 epochs the
fraction of pixels whose argmax is background (truth: 0.85), the foreground Dice of the
final output and, for RU-Net, the mean of its ROI mask (1.0: the attention keeps the whole
image; 0.27: it keeps nothing). The numbers quoted in ``keras_runet/losses.py`` and
docs/tuning.md come from this script.

    python benchmarks/dice_background.py [--epochs 150] [--seed 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import keras
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import synthetic_heart_batch  # noqa: E402

from keras_runet.models import build_model, compile_model, roi_mask_means  # noqa: E402


def run(name: str, include_background: bool, epochs: int, seed: int, every: int = 25):
    keras.utils.set_random_seed(seed)
    images, labels = synthetic_heart_batch(8, 64)
    model = compile_model(
        build_model(name, input_shape=(64, 64, 1), width=0.5),
        include_background=include_background,
    )
    targets = {o: labels for o in model.output_names}
    start, cells = time.perf_counter(), []
    for epoch in range(0, epochs + 1, every):
        if epoch:
            model.fit(images, targets, batch_size=8, epochs=epoch, initial_epoch=epoch - every,
                      verbose=0)  # fmt: skip
        probs = model.predict_on_batch(images)
        first = probs.get("coarse", probs["segmentation"])
        dice = model.evaluate(images, targets, verbose=0, return_dict=True)["segmentation_dice"]
        roi = roi_mask_means(model, images, probs.get("coarse"))
        cell = f"{epoch}: bg {np.mean(first.argmax(-1) == 0):.2f} dice {dice:.2f}"
        if roi is not None:
            cell += f" roi {roi.mean():.2f}"
        cells.append(cell)
    seconds = time.perf_counter() - start
    print(f"{name} include_background={include_background} ({seconds:.0f} s)")
    for cell in cells:
        print(f"    epoch {cell}")
    sys.stdout.flush()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    print("bg: fraction of pixels whose first-U-Net argmax is background (truth 0.85); "
          "dice: final output's foreground Dice; roi: RU-Net's ROI mask mean")  # fmt: skip
    for name in ("unet1", "runet"):
        for include_background in (False, True):
            run(name, include_background, args.epochs, args.seed)


if __name__ == "__main__":
    main()
