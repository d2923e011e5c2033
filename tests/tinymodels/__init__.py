"""Tiny random-weight models in the real on-disk formats of engines with no weights on PyPI.

Each generator writes a model directory that the engine's own loader accepts: the real
input and output names, dtypes, symbolic dimensions and metadata, with a few kilobytes of
random weights. What such a model says is noise; tests check shapes, times and errors.
"""

from tinymodels.paraformer import write_paraformer
from tinymodels.parakeet import MULTILINGUAL, write_parakeet

__all__ = ["MULTILINGUAL", "write_paraformer", "write_parakeet"]
