"""Accelerator performance models from a description (hardware ids ``sim-<name>``).

A layer is mapped onto the accelerator's loop kernels (folds of the operand matrices on the
PE array, one step per array cycle), and the dependency graph of those steps (array, DMA
prefetch chains, double-buffer windows, ofmap drains) is evaluated: fully, or until its
state repeats and then extrapolated exactly. Only numpy-free standard library code runs
here; nothing imports torch, halide or the measurement code.
"""
from .description import Accelerator, get, load, shipped
from .evaluate import estimate
from .layers import Layer, parse, read_network

__all__ = ["Accelerator", "Layer", "estimate", "get", "load", "parse", "read_network",
           "shipped"]
