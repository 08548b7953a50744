"""keras-runet: RU-Net (Refining U-Net) for robust 2D echocardiography segmentation.

One distribution installs two packages: ``keras_runet`` (models, training, evaluation,
tuning, export, the ``runet`` command) and ``tfds_camus`` (the CAMUS TFDS builder and a
synthetic CAMUS generator). See docs/design.md for the architecture and the contracts.
"""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
version = {}
exec((HERE / "keras_runet" / "version.py").read_text(), version)

# The stack is pinned to the minor versions this project is built and tested on: the
# traps listed in docs/design.md (KerasTuner importing tensorboard, TFDS importing
# importlib_resources, Keras reloading an unregistered "dice") were each reproduced on
# these versions. The lower ends are Colab's preinstalled stack (googlecolab/backend-info's
# pip freeze, 2026-08: TensorFlow 2.20.0, Keras 3.13.2, scikit-image 0.25.2), so that
# installing the package in Colab upgrades nothing and needs no runtime restart; CI runs a
# subset of the tests a second time pinned to that freeze (.ci/colab-constraints.txt).
install_requires = [
    "tensorflow>=2.20,<2.22",
    "keras>=3.13,<3.16",
    "tensorflow-datasets==4.9.10",
    "keras-tuner==1.4.8",
    # KerasTuner's BayesianOptimizationOracle imports scikit-learn (Gaussian process) but
    # does not declare it; `runet tune --oracle bayesian` needs it.
    "scikit-learn>=1.4",
    # Not declared by the packages that import them (see docs/design.md, "known traps").
    "tensorboard>=2.20",
    "importlib_resources>=6",
    "SimpleITK>=2.5,<2.6",
    "scikit-image>=0.25,<0.27",
    "scipy>=1.13",
    "numpy>=1.26",
    "matplotlib>=3.8",
    # keras_runet.export reads .weights.h5 files to check them against the architecture
    # (Keras depends on h5py too; declared because it is imported here).
    "h5py>=3.10",
    "pillow>=10",
]

extras_require = {
    "test": [
        "pytest>=8",
        "pytest-xdist>=3.5",  # pyproject's addopts: test files run in parallel
        "dill",  # tfds.testing needs it and TFDS does not declare it
        "medpy>=0.5",  # independent reference for the contour distances
        "nbclient>=0.10",
        "nbformat>=5.10",
        "ipykernel>=6",
        "ruff==0.17.6",  # pinned: format rules (incl. Markdown code blocks) change between releases
        # The backend-equivalence test (tests/test_backends.py) runs the layers on JAX too.
        "jax>=0.4.30",
        # PredictRequest / PredictResponse protos for the TF Serving tests
        # (tests/test_export_serving_formats.py). Each release requires tensorflow of at
        # least its own version (2.21: tensorflow>=2.21,<3), so it follows the TensorFlow
        # installed and installs nothing else new.
        "tensorflow-serving-api>=2.20,<2.22",
    ],
    "jax": ["jax>=0.4.30"],
    # The speed peer of benchmarks/run.py (MONAI's BasicUNet). torch is pinned to the CPU
    # build this project benchmarks with; monai 1.6 needs torch>=2.8 and numpy>=1.24,<3.
    "peer": ["torch==2.13.0", "monai>=1.6,<1.7"],
}
extras_require["all"] = sorted({d for deps in extras_require.values() for d in deps})

setup(
    name="keras-runet",
    version=version["__version__"],
    description="RU-Net (Refining U-Net) for robust segmentation of the heart in 2D "
    "echocardiography, with a CAMUS TFDS builder, in Keras 3",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["keras_runet", "keras_runet.*", "tfds_camus", "tfds_camus.*"]),
    # Run-time data only: the fold lists (tfds_camus.folds reads them) with their provenance
    # and licence, and the builder's README.md (TFDS reads it as the dataset description).
    # camus/dummy_data/ is test data for tfds.testing.DatasetBuilderTestCase: the tests run
    # from the repository, so the wheel leaves it out. No include_package_data: it would add
    # every file of the source tree's manifest (dummy_data included) back.
    package_data={
        "tfds_camus": [
            "folds/*.txt",
            "folds/README.md",
            "folds/LICENSE*",
            "camus/*.md",
            "camus/*.txt",
        ],
    },
    exclude_package_data={"tfds_camus": ["camus/dummy_data/**/*"]},
    install_requires=install_requires,
    extras_require=extras_require,
    entry_points={
        "console_scripts": [
            "runet=keras_runet.cli:main",
            "camus-synth=tfds_camus.phantom:main",
        ]
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Medical Science Apps.",
        "Topic :: Scientific/Engineering :: Image Recognition",
    ],
)
