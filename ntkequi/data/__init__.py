"""Data: FashionMNIST / MNIST with verified checksums (:mod:`~ntkequi.data.datasets`),
synthetic generators (:mod:`~ntkequi.data.synthetic`: wedge points, Ising) and physical
toy data (:mod:`~ntkequi.data.physics`: force-field samples by Brownian dynamics,
molecule-like configurations)."""
from . import physics
from .datasets import (
                       DATASETS,
                       ENV_VAR,
                       OOD_SETS,
                       SPLIT_PRESETS,
                       DataError,
                       SplitConfig,
                       data_dir_from_env,
                       downsample,
                       load,
                       ood_set,
                       read_idx,
                       splits,
                       verify_file,
)
from .synthetic import ising_configurations, ising_energy, noise_points, radial_target, ring_points, wedge_points

__all__ = ["DataError", "DATASETS", "OOD_SETS", "ENV_VAR", "SplitConfig", "SPLIT_PRESETS", "data_dir_from_env",
           "verify_file", "read_idx", "load", "splits", "ood_set", "downsample", "wedge_points", "ring_points",
           "noise_points", "radial_target", "ising_configurations", "ising_energy", "physics"]
