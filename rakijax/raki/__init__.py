"""Complex RAKI (Akcakaya 2019; Dawood 2024) in flax.nnx: layers, model, training, inference."""

from .config import RakiConfig
from .infer import apply
from .infer import reconstruct
from .layers import ComplexConv
from .layers import complex_leaky_relu
from .model import Raki
from .train import TrainResult
from .train import train
from .train import train_kernels

__all__ = [
    "RakiConfig",
    "Raki",
    "ComplexConv",
    "complex_leaky_relu",
    "train",
    "train_kernels",
    "TrainResult",
    "apply",
    "reconstruct",
]
