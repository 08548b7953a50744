"""The ``camus`` TFDS builder (see ``camus_dataset_builder.py``)."""

from tfds_camus.camus.camus_dataset_builder import Builder, CamusConfig

__all__ = ["Builder", "CamusConfig"]
