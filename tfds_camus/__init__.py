"""CAMUS as a TensorFlow Datasets builder, the paper's folds, and a synthetic CAMUS.

``import tfds_camus`` registers the ``camus`` builder with TFDS. This package never
imports ``keras_runet`` (DESIGN.md: the one-way arrow).
"""
