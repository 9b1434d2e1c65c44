"""ntkequi: emergent equivariance of deep ensembles, from the neural tangent kernel.

A deep ensemble trained with full group-orbit data augmentation is, in the
infinite-width limit, exactly equivariant; the NTK gives its mean in closed form.

Layers (each imports only the ones before it):

* core: :mod:`~ntkequi.groups`, :mod:`~ntkequi.nn`, :mod:`~ntkequi.kernels`,
  :mod:`~ntkequi.ensembles`, :mod:`~ntkequi.metrics`, :mod:`~ntkequi.data`,
  :mod:`~ntkequi.runs`;
* :mod:`~ntkequi.experiments` (one module per experiment, a registry);
* :mod:`~ntkequi.report` (figures, tables, pages from saved results);
* :mod:`~ntkequi.cli` (the ``ntkequi`` command).

Importing ntkequi neither imports neural-tangents nor patches JAX: ntkequi's own kernels do
not need it. :mod:`ntkequi.nt` is neural-tangents with ntkequi's compatibility fixes for current
JAX (:mod:`ntkequi._compat`) applied; it is imported where neural-tangents is used (an ArchSpec's
reference kernel ``kernel_fn_nt``, the gelu kernel, :mod:`ntkequi.kernels.group_stax`, the
tests). The names below are the stable API; everything else is reached through its subpackage.

>>> import jax; jax.config.update("jax_enable_x64", True)
>>> import ntkequi as nq
>>> c4 = nq.groups.planar_rotations(4)
>>> x = nq.data.wedge_points(jax.random.PRNGKey(0), 8)
>>> spec = nq.ArchSpec(kind="mlp", depth=2)
>>> mu = nq.predict(spec, x, nq.data.radial_target(x), c4.orbit(x[:2]).reshape(-1, 2), t=float("inf"), group=c4)
>>> bool(nq.equivariance_error(nq.metrics.orbit_predictions(mu.mean[0], c4), c4).relative < 1e-10)
True
"""
from . import data, ensembles, groups, kernels, metrics, nn, runs
from .ensembles import EnsembleResult, TrainConfig, TrainingData, train
from .groups import Group, Rep, check_group
from .kernels import Prediction, Predictor, max_learning_rate, predict, symmetrize
from .metrics import equivariance_error, orbit_same_predictions
from .nn import ArchSpec
from .runs import RunDir, load_run

__version__ = "0.1.0"
__all__ = ["groups", "kernels", "nn", "ensembles", "metrics", "data", "runs",
           "Group", "Rep", "check_group", "ArchSpec", "predict", "Predictor", "max_learning_rate", "Prediction", "symmetrize",
           "train", "TrainConfig", "TrainingData", "EnsembleResult", "equivariance_error", "orbit_same_predictions",
           "RunDir", "load_run", "__version__"]
