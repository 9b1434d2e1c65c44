"""Finite deep ensembles: M members = one ``jax.vmap`` over member PRNG keys, trained with optax.

Time convention as in :mod:`ntkequi.kernels.ntk`: with ``optimizer='gd'`` and ``loss='mse'``
each step is full-batch gradient descent on the summed loss ``1/2 ||f(X) - Y||^2``,
so ``step * learning_rate`` is the NTK training time ``t`` and the ensemble mean
approaches ``ntk.predict(...).mean`` at that ``t`` as width and M grow.

Augmentation modes (the group's output representation transforms targets):

* 'none': the training set as given;
* 'orbit': every sample with all |G| transforms (the setting of the theory);
* 'random': each step, each sample replaced by ``g x`` for one random g per member
  (``rho_out(g) y`` for its target);
* 'subgroup': the orbit under the subgroup {0, s, 2s, ...} (``subgroup_step=s``),
  e.g. C4 inside C16 with s=4: partial augmentation.

Runs given a ``run_dir`` write their config, the recorded predictions as they
are made (``predictions_step{S}.npy``, ``(M, N_eval, k)``, indexed by
``results.jsonl``), and a checkpoint of the full training state; a rerun resumes
from the checkpoint and skips recorded steps.
"""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any, ClassVar, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._validate import MEMBER_DTYPES as DTYPES, check_finite, check_member_dtype
from .groups import Group, subgroup_elements
from .nn.arch import ArchSpec, mlp_empirical_ntk
from .nn.layers import Dense
from .runs import TrainingStore

__all__ = ["TrainConfig", "TrainingData", "EnsembleResult", "learning_rate_schedule", "init_ensemble", "train", "training_set",
           "member_sharding", "shard_members", "map_members", "member_map_for", "micro_batch_for", "batch_grad",
           "minibatch_indices", "xla_options_for", "CPU_XLA_OPTIONS", "member_dtype", "DTYPES", "MODELS",
           "member_apply", "antithetic_members", "linearised_gd", "linearised_ensemble", "readout_name", "Runtime"]

OPTIMIZERS = ("gd", "sgd", "adam")
SCHEDULES = ("constant", "onecycle")
LOSSES = ("mse", "xent")
AUGMENTATIONS = ("none", "orbit", "random", "subgroup")
MODELS = ("network", "linearised")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How an ensemble is trained (saved beside every result).

    Attributes:
        ensemble_size: number of members M.
        steps: training steps.
        learning_rate: step size (for 'gd' + 'mse', ``steps * learning_rate`` is the NTK time);
            the peak step size for ``schedule='onecycle'``.
        schedule: 'constant', or 'onecycle' (``optax.cosine_onecycle_schedule`` over ``steps``:
            cosine warm-up from ``learning_rate / 25`` to ``learning_rate`` in the first 30% of
            the steps, cosine decay to ``learning_rate / 2.5e5`` after; 'sgd'/'adam' only).
        optimizer: 'gd', 'sgd' or 'adam'.
        loss: 'mse' (summed) or 'xent'.
        batch_size: minibatch size for 'sgd'/'adam' (None = full batch); 'gd' is
            always full batch.
        augmentation: 'none', 'orbit', 'random' or 'subgroup' (see the module doc).
        subgroup_step: s of the subgroup {0, s, 2s, ...} for 'subgroup'.
        record_steps: steps (0 = initialisation) at which member predictions on the
            evaluation inputs are recorded; the last one should be ``steps``.
        checkpoint_every: also checkpoint every this many steps (0 = only at records).
        seed: PRNG seed of the member initialisations and the augmentation draws.
        dtype: precision the members train in (parameters, activations, gradients, optimiser
            state): 'float32' (the default: the finite side's deviations from the NTK are far
            above float32 rounding, and float32 CNNs train much faster on a CPU:
            ``benchmarks/member_precision.py``) or
            'float64' (needs ``jax_enable_x64``), independent of the process-wide float64
            switch the kernels use; None: the process default (float64 under
            ``jax_enable_x64``, else float32), what runs saved before this field meant.
            Recorded predictions are returned in float64 either way (see :func:`train`).
        model: 'network', or 'linearised': each member is its network's first-order Taylor
            expansion around its initialisation, ``f(x; w0) + J(x; w0)(w - w0)``, trained by
            the same optimiser (:func:`member_apply`); its ensemble differs from the NTK
            prediction only through the finite-width (empirical) kernel.
        antithetic: members come in pairs ``(2i, 2i+1)`` that share every weight except the
            sign of the readout layer (weights and bias): the same empirical NTK, opposite
            initial functions (:func:`antithetic_members`); ``ensemble_size`` must be even.
    """
    SAVED_BEFORE: ClassVar[dict] = {"dtype": None, "model": "network", "antithetic": False}   # older runs
    ensemble_size: int = 8
    steps: int = 1000
    learning_rate: float = 0.1
    optimizer: str = "gd"
    schedule: str = "constant"
    loss: str = "mse"
    batch_size: Optional[int] = None
    augmentation: str = "none"
    subgroup_step: int = 1
    record_steps: tuple = (0, 1000)
    checkpoint_every: int = 0
    seed: int = 0
    dtype: Optional[str] = "float32"
    model: str = "network"
    antithetic: bool = False

    def __post_init__(self):
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}; got {self.model!r}")
        if self.antithetic and self.ensemble_size % 2:
            raise ValueError(f"antithetic members come in pairs: ensemble_size must be even; got {self.ensemble_size}")
        if self.dtype is not None:
            check_member_dtype("dtype (or None: the process default)", self.dtype)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}; got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}; got {self.schedule!r}")
        if self.schedule != "constant" and self.optimizer == "gd":
            raise ValueError(f"schedule={self.schedule!r} needs optimizer 'sgd' or 'adam' (gd keeps the NTK "
                             f"time step * learning_rate); got optimizer='gd'")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}; got {self.loss!r}")
        if self.augmentation not in AUGMENTATIONS:
            raise ValueError(f"augmentation must be one of {AUGMENTATIONS}; got {self.augmentation!r}")
        if self.ensemble_size < 1 or self.steps < 0 or not self.learning_rate > 0:
            raise ValueError(f"need ensemble_size >= 1, steps >= 0, learning_rate > 0; got "
                             f"{self.ensemble_size}, {self.steps}, {self.learning_rate}")
        bad = [s for s in self.record_steps if not 0 <= s <= self.steps]
        if bad or list(self.record_steps) != sorted(set(self.record_steps)):
            raise ValueError(f"record_steps must be increasing steps in [0, {self.steps}]; "
                             f"got {self.record_steps}")


@dataclasses.dataclass(frozen=True)
class EnsembleResult:
    """steps ``(R,)``; members ``(R, M, N_eval, k)`` member predictions at each
    recorded step; ``mean``/``std`` over members ``(R, N_eval, k)``; ``params``
    the final member parameters (leading axis M)."""
    steps: np.ndarray
    members: np.ndarray
    params: object = None

    @property
    def mean(self) -> np.ndarray:
        """``(R, N_eval, k)``: the mean over members at each record."""
        return self.members.mean(axis=1)

    @property
    def std(self) -> np.ndarray:
        """``(R, N_eval, k)``: the standard deviation over members (ddof 1; zero for one member)."""
        return self.members.std(axis=1, ddof=1) if self.members.shape[1] > 1 else 0 * self.mean

    def times(self, learning_rate: float) -> np.ndarray:
        """NTK training time of each record (``step * learning_rate``; gd + mse)."""
        return self.steps * learning_rate


def init_ensemble(spec: ArchSpec, key, ensemble_size: int, x_example, dtype=None):
    """Parameters of ``ensemble_size`` members (leading axis M), one vmap over keys.

    dtype: None keeps the initialiser's (float64 under ``jax_enable_x64``, else float32);
    otherwise the parameters are drawn at that default precision and cast, so members of
    one key are the same networks, to rounding, in float32 and float64."""
    net = spec.flax()
    keys = jax.random.split(key, ensemble_size)
    params = jax.vmap(lambda k: net.init(k, x_example[:1]))(keys)
    if dtype is None:
        return params
    return jax.tree_util.tree_map(lambda p: p.astype(dtype) if jnp.issubdtype(p.dtype, jnp.floating) else p,
                                  params)


def readout_name(spec) -> str:
    """The name of the readout layer (the last Dense) in the parameters of ``spec.flax()``
    (an :class:`ArchSpec`).

    >>> readout_name(ArchSpec(kind="mlp", depth=2)), readout_name(ArchSpec(kind="cnn", depth=2))
    ('_NTKDense_2', '_NTKDense_0')
    """
    if not isinstance(spec, ArchSpec):
        raise ValueError(f"antithetic members need an ArchSpec (a known readout layer); got {type(spec).__name__}")
    return f"_NTKDense_{sum(1 for layer in spec.layers() if isinstance(layer, Dense)) - 1}"


def antithetic_members(params, spec):
    """Pairs from ``P`` members (leading axis ``P``): ``2P`` members, ``2i`` member ``i`` and
    ``2i+1`` the same with the readout layer's weights and bias negated.

    Negating the readout negates the initial function ``f_0`` and leaves the empirical NTK
    unchanged: the readout's own gradient does not involve its weights, every earlier layer's
    gradient changes sign, and the NTK sums products of gradients (docs/guide.md, ntk_convergence section).

    >>> spec = ArchSpec(kind="mlp", depth=1, width=8)
    >>> x = jnp.ones((2, 3))
    >>> p = antithetic_members(init_ensemble(spec, jax.random.PRNGKey(0), 2, x), spec)
    >>> f = jax.vmap(lambda q: spec.flax().apply(q, x))(p)
    >>> f.shape, bool(jnp.allclose(f[0], -f[1])), bool(jnp.allclose(f[2], -f[3]))
    ((4, 2, 1), True, True)
    """
    name = readout_name(spec)

    def pair(path, leaf):
        keys = [getattr(k, "key", None) for k in path]
        sign = -1.0 if name in keys else 1.0
        return jnp.stack([leaf, sign * leaf], axis=1).reshape((-1,) + leaf.shape[1:])
    return jax.tree_util.tree_map_with_path(pair, params)


def linearised_gd(theta, f0, y_train, steps, learning_rate: float) -> jnp.ndarray:
    """Predictions of one linearised member after ``s`` steps of full-batch gradient descent on
    the summed MSE, in closed form from its empirical NTK (what :func:`train` with
    ``model='linearised'`` computes step by step):

        f_s(x) = f_0(x) - Theta(x, X) Theta(X, X)^-1 (I - (I - eta Theta(X, X))^s) (f_0(X) - Y),

    through the eigendecomposition of ``Theta(X, X)`` (``(1 - (1 - eta lam)^s) / lam`` tends to
    ``eta s`` as ``lam -> 0``, so a singular kernel is fine).

    Args:
        theta: ``(P k, P k)`` empirical NTK over the ``N`` training inputs then the ``P - N``
            evaluation inputs, rows ordered ``(x, c)``
            (:func:`ntkequi.nn.mlp_empirical_ntk`).
        f0: ``(P, k)`` initial outputs on the same inputs.
        y_train: ``(N, k)`` targets.
        steps: the step counts.
        learning_rate: the step size eta.

    Returns:
        ``(len(steps), P - N, k)``.

    >>> theta = jnp.array([[2.0, 0.5], [0.5, 1.0]])                # one output, N = 1, one evaluation input
    >>> f = linearised_gd(theta, jnp.array([[0.0], [0.0]]), jnp.array([[1.0]]), (0, 1, 1000), 0.25)
    >>> [round(float(v), 4) for v in f[:, 0, 0]]                     # 0.5 * 0.25 after one step; 0.5 / 2 at the end
    [0.0, 0.125, 0.25]
    """
    p, k = f0.shape
    n = y_train.shape[0]
    f = f0.reshape(-1)
    lam, u = jnp.linalg.eigh(theta[:n * k, :n * k])
    r = u.T @ (f[:n * k] - y_train.reshape(-1))
    out = []
    for s in steps:
        grown = -jnp.expm1(s * jnp.log1p(-learning_rate * lam))                     # 1 - (1 - eta lam)^s
        gain = jnp.where(jnp.abs(lam) > 1e-12 * jnp.abs(lam).max(), grown / jnp.where(lam == 0, 1, lam),
                         learning_rate * s)
        out.append((f[n * k:] - theta[n * k:, :n * k] @ (u @ (gain * r))).reshape(p - n, k))
    return jnp.stack(out)


def linearised_ensemble(spec: ArchSpec, params, x_train, y_train, x_eval, steps, learning_rate: float,
                        gram_dtype=None, progress: bool = False) -> np.ndarray:
    """The predictions of linearised MLP members trained by full-batch gradient descent, in closed
    form (:func:`linearised_gd` on each member's :func:`~ntkequi.nn.mlp_empirical_ntk`): equal to
    :func:`train` with ``model='linearised'`` on the same training set, without the training, and
    so reachable at widths where training is not (cost per member ``O((P k)^2 width)`` for the
    Gram products plus ``O((N k)^3)`` for the eigendecomposition, ``P = N + N_eval``).

    Args:
        spec: an MLP :class:`ArchSpec`.
        params: the members' parameters, leading axis M (:func:`init_ensemble`).
        x_train: ``(N, ...)``, the training set as trained on (the orbit included:
            :func:`training_set`); y_train: ``(N, k)``; x_eval: ``(N_eval, ...)``.
        steps: the step counts; learning_rate: the step size.
        gram_dtype: dtype of the empirical NTK's Gram products (None: the parameters').
        progress: a progress bar over members.

    Returns:
        ``(len(steps), M, N_eval, k)`` float64 numpy array.
    """
    pts = jnp.concatenate([x_train, x_eval])

    @jax.jit
    def one(p, pts, y):                  # the data as arguments, not constants XLA would fold
        f0, theta = mlp_empirical_ntk(spec, p, pts, gram_dtype=gram_dtype)
        return linearised_gd(theta, f0, y, steps, learning_rate)
    m = jax.tree_util.tree_leaves(params)[0].shape[0]
    members = range(m)                  # one member at a time: its Gram factors take (P k) x width floats
    if progress:
        from tqdm.auto import tqdm
        members = tqdm(members, desc="linearised members", leave=False)
    out = [np.asarray(one(jax.tree_util.tree_map(lambda v: v[i], params), pts, y_train), dtype=np.float64)
           for i in members]
    return np.stack(out, axis=1)


def member_apply(spec, model: str = "network"):
    """``apply(params, x)`` of one member: the network (``spec.flax().apply``) or, for
    'linearised', its first-order Taylor expansion around the initial parameters ``w0``,
    with ``params = (w, w0)``: ``f(x; w0) + J(x; w0)(w - w0)`` (one ``jax.jvp``; ``w0`` is
    held fixed by ``stop_gradient``, so an optimiser leaves it where it is).

    >>> spec = ArchSpec(kind="mlp", depth=1, width=8)
    >>> w0 = spec.flax().init(jax.random.PRNGKey(0), jnp.ones((1, 2)))
    >>> f, lin = member_apply(spec), member_apply(spec, "linearised")
    >>> bool(jnp.allclose(lin((w0, w0), jnp.ones((3, 2))), f(w0, jnp.ones((3, 2)))))
    True
    """
    apply = spec.flax().apply
    if model == "network":
        return apply
    if model != "linearised":
        raise ValueError(f"model must be one of {MODELS}; got {model!r}")

    def linearised(params, x):
        w, w0 = params
        w0 = jax.lax.stop_gradient(w0)
        f0, df = jax.jvp(lambda q: apply(q, x), (w0,), (jax.tree_util.tree_map(jnp.subtract, w, w0),))
        return f0 + df
    return linearised


def member_dtype(cfg: TrainConfig):
    """The numpy dtype ``cfg``'s members train in (``cfg.dtype``; None: float64 under
    ``jax_enable_x64``, else float32).

    >>> member_dtype(TrainConfig()).name
    'float32'

    Raises:
        ValueError: 'float64' while ``jax_enable_x64`` is off (JAX would silently use float32).
    """
    if cfg.dtype is None:
        return np.dtype(jnp.zeros(()).dtype)
    if cfg.dtype == "float64" and not jax.config.jax_enable_x64:
        raise ValueError("TrainConfig.dtype='float64' needs jax_enable_x64 (jax.config.update('jax_enable_x64', "
                         "True) before any arrays exist); JAX would otherwise train in float32")
    return np.dtype(cfg.dtype)


def member_sharding(ensemble_size: int, devices: Optional[int] = None):
    """``(members, replicated)`` :class:`jax.sharding.NamedSharding` s that split the
    member axis over a 1-d device mesh ``('members',)``, or ``None`` on one device.

    devices: how many local devices to use (default all); the largest count ``<=``
    that which divides ``ensemble_size`` is taken, so every device holds the same
    number of members."""
    avail = jax.local_device_count()
    want = avail if devices is None else int(devices)
    if want < 1 or want > avail:
        raise ValueError(f"devices={devices} but {avail} local device(s) exist")
    d = max(k for k in range(1, want + 1) if ensemble_size % k == 0)
    if d == 1:
        return None
    from jax.sharding import Mesh, NamedSharding, PartitionSpec
    mesh = Mesh(np.asarray(jax.local_devices()[:d]), ("members",))
    return NamedSharding(mesh, PartitionSpec("members")), NamedSharding(mesh, PartitionSpec())


def shard_members(tree, shardings):
    """Place every leaf of ``tree`` (leading axis M) split over the member mesh."""
    if shardings is None:
        return tree
    return jax.device_put(tree, shardings[0])


def learning_rate_schedule(cfg: TrainConfig):
    """The step size of ``cfg`` as an optax schedule (a float for 'constant').

    >>> f = learning_rate_schedule(TrainConfig(steps=100, learning_rate=1e-2, optimizer="adam",
    ...                                        schedule="onecycle", record_steps=(100,)))
    >>> [round(float(f(s)), 6) for s in (0, 30, 100)]
    [0.0004, 0.01, 0.0]
    """
    if cfg.schedule == "constant":
        return cfg.learning_rate
    return optax.cosine_onecycle_schedule(max(1, cfg.steps), cfg.learning_rate)


def _optimizer(cfg: TrainConfig):
    lr = learning_rate_schedule(cfg)
    if cfg.optimizer in ("gd", "sgd"):
        return optax.sgd(lr)
    return optax.adam(lr)


def _loss_fn(apply, cfg: TrainConfig):
    def loss(params, x, y):
        out = apply(params, x)
        if cfg.loss == "mse":
            return 0.5 * jnp.sum((out - y) ** 2)
        return optax.softmax_cross_entropy(out, y).mean()
    return loss


def training_set(group: Optional[Group], cfg: TrainConfig, x, y):
    """The fixed training set of ``cfg.augmentation`` ('orbit', 'subgroup': all
    transforms, group-major; 'none' and 'random': ``(x, y)`` as given)."""
    if cfg.augmentation in ("none", "random"):
        return x, y
    if group is None:
        raise ValueError(f"augmentation={cfg.augmentation!r} needs a group")
    elems = (np.arange(group.order) if cfg.augmentation == "orbit"
             else subgroup_elements(group, cfg.subgroup_step))
    xs = jnp.concatenate([group.act(int(g), x) for g in elems])
    ys = jnp.concatenate([group.act_out(int(g), y) for g in elems])
    return xs, ys


def member_map_for(sharded: bool, ensemble_size: int = 1) -> str:
    """How members are mapped in the training step: 'unroll' on a single CPU device
    (for up to 64 members), else 'vmap'.

    On XLA:CPU the vmapped step (batched matmuls; grouped convolutions for CNNs) ran
    1.8x (MLP) to 8x (CNN) slower than the same members unrolled in one jitted step
    (``python benchmarks/run.py``, section 2, in benchmarks/RESULTS.md); on
    accelerators, whenever members are sharded over devices, and for very large
    ensembles (compile time grows with the unrolled size) the vmap is used."""
    cpu = jax.default_backend() == "cpu"
    return "unroll" if (cpu and not sharded and ensemble_size <= 64) else "vmap"


def map_members(fn, size: int, how: str = "vmap", in_axes=0):
    """``fn`` mapped over a leading member axis of size ``size``: ``jax.vmap`` or, for
    ``how='unroll'``, one call per member inside the same trace, outputs stacked.
    ``in_axes`` as for vmap (0 or None per positional argument)."""
    if how == "vmap":
        return jax.vmap(fn, in_axes=in_axes)
    if how != "unroll":
        raise ValueError(f"member map must be 'vmap' or 'unroll'; got {how!r}")

    def unrolled(*args):
        axes = in_axes if isinstance(in_axes, (tuple, list)) else (in_axes,) * len(args)
        outs = [fn(*[a if ax is None else jax.tree_util.tree_map(lambda v: v[i], a)
                     for a, ax in zip(args, axes)]) for i in range(size)]
        return jax.tree_util.tree_map(lambda *z: jnp.stack(z), *outs)
    return unrolled


def _full_batch(cfg: TrainConfig, n_train: int) -> bool:
    return cfg.optimizer == "gd" or cfg.batch_size is None or cfg.batch_size >= n_train


CPU_XLA_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}
"""XLA compiler options of the training step on a CPU: YNNPACK for single dots only (XLA's
own default list), so that convolutions, pooling and elementwise ops are XLA's (see
:func:`xla_options_for`)."""


def xla_options_for(xla_options="auto") -> dict:
    """The compiler options the jitted training step and evaluation are compiled with:
    ``'auto'``: :data:`CPU_XLA_OPTIONS` on the CPU backend, none elsewhere; None: none
    (XLA's defaults as JAX sets them); a dict: those options.

    jax 0.10.2 also routes convolutions and reductions to YNNPACK on a CPU; keeping it to
    single dots makes the orbit table's models' training steps faster with the same results
    to float32 rounding (measured by ``python benchmarks/ensemble_formulations.py``, recorded in
    benchmarks/RESULTS.md). The options apply to the executables ntkequi
    compiles (``jax.jit(..., compiler_options=...)``), never to the process.

    >>> xla_options_for(None), xla_options_for({"a": "b"})
    ({}, {'a': 'b'})
    """
    if xla_options is None:
        return {}
    if isinstance(xla_options, dict):
        return dict(xla_options)
    if xla_options != "auto":
        raise ValueError(f"xla_options must be 'auto', None or a dict of XLA options; got {xla_options!r}")
    return dict(CPU_XLA_OPTIONS) if jax.default_backend() == "cpu" else {}


def minibatch_indices(key, n: int, size: int) -> jnp.ndarray:
    """``size`` distinct indices in ``[0, n)``, a uniformly random subset: those of the
    ``size`` largest of ``n`` uniform draws (``lax.top_k``).

    The same distribution as ``jax.random.choice(key, n, (size,), replace=False)``,
    which permutes all ``n`` indices (for 128 of 55,000, much slower than this:
    ``python benchmarks/ensemble_formulations.py``).

    >>> idx = minibatch_indices(jax.random.PRNGKey(0), 10, 4)
    >>> idx.shape, len(set(idx.tolist())), bool(idx.max() < 10)
    ((4,), 4, True)
    """
    if not 0 < size <= n:
        raise ValueError(f"a minibatch of {size} distinct indices needs 0 < size <= n={n}")
    return jax.lax.top_k(jax.random.uniform(key, (n,)), size)[1]


def micro_batch_for(how: str, cfg: TrainConfig, n_train: int) -> Optional[int]:
    """The micro-batch of each member's gradient: 32 images when members are unrolled
    (a single CPU device) and trained on minibatches of 64 to 512, else None (the
    whole batch at once).

    The gradient of a minibatch is then the weighted sum of the gradients of its
    micro-batches (:func:`batch_grad`: the same gradient, to rounding). On a CPU that makes
    the orbit table's CNN ensemble's training step faster (the 28x28x64 first-layer maps of 32
    images fit in the cache; of 128 they do not; ``python benchmarks/ensemble_formulations.py``,
    benchmarks/RESULTS.md). Full-batch
    runs keep the whole batch (their many micro-batches would be unrolled too).

    >>> micro_batch_for("unroll", TrainConfig(optimizer="adam", batch_size=128), 55000)
    32
    >>> micro_batch_for("vmap", TrainConfig(optimizer="adam", batch_size=128), 55000) is None
    True
    """
    if how != "unroll" or _full_batch(cfg, n_train) or not 64 <= cfg.batch_size <= 512:
        return None
    return 32


def batch_grad(loss, cfg: TrainConfig, micro_batch: Optional[int] = None):
    """``grad(loss)(params, x, y)``, computed over micro-batches of ``micro_batch``
    inputs (None: at once) and combined as the loss combines examples: summed for 'mse'
    (a sum over examples), weighted by their share of the batch for 'xent' (a mean).

    >>> import optax
    >>> cfg = TrainConfig(loss="xent")
    >>> loss = lambda w, x, y: optax.softmax_cross_entropy(x @ w, y).mean()
    >>> w, x = jnp.ones((3, 2)), jnp.arange(30.0).reshape(10, 3) / 30
    >>> y = jax.nn.one_hot(jnp.arange(10) % 2, 2)
    >>> bool(jnp.allclose(batch_grad(loss, cfg, 4)(w, x, y), jax.grad(loss)(w, x, y), atol=1e-6))
    True
    """
    g = jax.grad(loss)
    if micro_batch is None:
        return g
    if micro_batch < 1:
        raise ValueError(f"micro_batch must be a positive number of inputs; got {micro_batch}")

    def chunked(params, x, y):
        n = x.shape[0]
        parts = []
        for i in range(0, n, micro_batch):
            gi = g(params, x[i:i + micro_batch], y[i:i + micro_batch])
            w = 1.0 if cfg.loss == "mse" else min(micro_batch, n - i) / n
            parts.append(jax.tree_util.tree_map(lambda v: w * v, gi))
        return jax.tree_util.tree_map(lambda *v: sum(v[1:], v[0]), *parts)
    return chunked


def _make_step(spec, cfg, group, x, y, how: str = "vmap", micro_batch: Optional[int] = None,
               xla_options: Optional[dict] = None, dtype=None):
    apply = member_apply(spec, cfg.model)
    loss = _loss_fn(apply, cfg)
    grad = batch_grad(loss, cfg, micro_batch)
    opt = _optimizer(cfg)
    n = x.shape[0]
    full_batch = _full_batch(cfg, n)

    def member_step(params, opt_state, key):
        kb, kg = jax.random.split(key)
        xb, yb = x, y
        if not full_batch:
            idx = minibatch_indices(kb, n, cfg.batch_size)
            xb, yb = xb[idx], yb[idx]
        if cfg.augmentation == "random":
            gs = jax.random.randint(kg, (xb.shape[0],), 0, group.order)
            xb = jax.vmap(lambda g, xi: group.act(g, xi[None])[0])(gs, xb)
            yb = jax.vmap(lambda g, yi: group.act_out(g, yi[None])[0])(gs, yb)
            if dtype is not None:       # a group's float64 tables must not promote the members
                xb, yb = xb.astype(dtype), yb.astype(dtype)
        grads = grad(params, xb, yb)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    ensemble_step = map_members(member_step, cfg.ensemble_size, how)

    @functools.partial(jax.jit, compiler_options=xla_options)
    def one_step(state):
        params, opt_state, key = state
        key, sub = jax.random.split(key)
        keys = jax.random.split(sub, cfg.ensemble_size)
        params, opt_state = ensemble_step(params, opt_state, keys)
        return params, opt_state, key

    def run_steps(state, n_steps: int, on_step=None):
        # A Python loop over a jitted step, not lax.scan: on XLA:CPU a convolution
        # inside a while loop ran ~4x slower than the same step jitted alone
        # (benchmarks/ensemble_step.py prints the ratio).
        for _ in range(int(n_steps)):
            state = one_step(state)
            if on_step is not None:
                on_step(1)
        return state

    return opt, run_steps


@dataclasses.dataclass(frozen=True)
class Runtime:
    """How :func:`train` computes an ensemble, never what it computes (the results are the same
    to rounding): the speed and device options, which benchmarks and tests set.

    Attributes:
        eval_batch_size: evaluation chunk, inputs at a time (all members at once).
        devices: members are data-parallel: with several local devices the member axis of
            parameters and optimiser state is sharded over them (:func:`member_sharding`);
            this limits the count (None: all).
        member_map: 'vmap' or 'unroll' the members in the jitted step (None:
            :func:`member_map_for`: unrolled on a single CPU device, faster there).
        micro_batch: each member's gradient over micro-batches of this many inputs ('auto':
            :func:`micro_batch_for`; None: the whole batch at once; faster where a whole batch's
            activations overflow the CPU's cache).
        xla_options: compiler options of the step and the evaluation (:func:`xla_options_for`;
            'auto': on a CPU, convolutions by XLA rather than YNNPACK).

    >>> Runtime(member_map="vmap").micro_batch
    'auto'
    """
    eval_batch_size: int = 512
    devices: Optional[int] = None
    member_map: Optional[str] = None
    micro_batch: Union[int, str, None] = "auto"
    xla_options: Any = "auto"


def _checked_data(spec, cfg: TrainConfig, x_train, y_train, x_eval, group):
    """The training set (augmented as ``cfg`` says) cast to the members' dtype, the evaluation
    inputs, and the dtype; ValueError naming a bad shape, target count or missing group."""
    x_train, y_train = check_finite("x_train", x_train), check_finite("y_train", y_train)
    x_eval = check_finite("x_eval", x_eval)
    if y_train.ndim != 2 or y_train.shape[0] != x_train.shape[0]:
        raise ValueError(f"y_train must be (N={x_train.shape[0]}, k); got {y_train.shape}")
    if y_train.shape[1] != spec.out_dim:
        raise ValueError(f"targets have k={y_train.shape[1]} components but spec.out_dim={spec.out_dim}")
    if cfg.augmentation != "none" and group is None:
        raise ValueError(f"augmentation={cfg.augmentation!r} needs a group")
    if group is not None:
        group.check_input(x_train)
    dtype = member_dtype(cfg)
    x, y = training_set(group, cfg, x_train, y_train)
    return jnp.asarray(x, dtype), jnp.asarray(y, dtype), x_eval, dtype        # cast once


class _Engine:
    """The compiled pieces of one training run: the initial state and its placement on the
    devices, ``run(state, n, callback)`` (n steps), and the members' predictions."""

    def __init__(self, spec, cfg: TrainConfig, group, x, y, dtype, runtime: Runtime):
        self.spec, self.cfg, self.x, self.dtype, self.runtime = spec, cfg, x, dtype, runtime
        self.shardings = member_sharding(cfg.ensemble_size, runtime.devices)
        how = runtime.member_map or member_map_for(self.shardings is not None, cfg.ensemble_size)
        if how == "unroll" and self.shardings is not None:
            raise ValueError("member_map='unroll' cannot be sharded over devices; pass devices=1 or 'vmap'")
        micro_batch = runtime.micro_batch
        if micro_batch == "auto":
            micro_batch = micro_batch_for(how, cfg, x.shape[0])
        elif micro_batch is not None and (isinstance(micro_batch, str) or int(micro_batch) < 1):
            raise ValueError(f"micro_batch must be 'auto', None or a positive int; got {micro_batch!r}")
        options = xla_options_for(runtime.xla_options)
        self.opt, self.run = _make_step(spec, cfg, group, x, y, how, micro_batch, options, dtype)
        self._apply = jax.jit(map_members(member_apply(spec, cfg.model), cfg.ensemble_size, how, in_axes=(0, None)),
                              compiler_options=options)

    def initial_state(self):
        """``(params, optimiser state, key)`` of the members drawn from ``cfg.seed``, placed."""
        cfg = self.cfg
        key_init, key_train = jax.random.split(jax.random.PRNGKey(cfg.seed))
        drawn = cfg.ensemble_size // 2 if cfg.antithetic else cfg.ensemble_size
        params = init_ensemble(self.spec, key_init, drawn, self.x, None if cfg.dtype is None else self.dtype)
        if cfg.antithetic:
            params = antithetic_members(params, self.spec)
        if cfg.model == "linearised":
            params = (params, params)                       # (w, w0): the expansion point travels along
        return self.place((params, jax.vmap(self.opt.init)(params), key_train))

    def place(self, state):
        """``state`` with its member axis sharded over the devices (unchanged on one device)."""
        if self.shardings is None:
            return state
        p, o, k = state
        return shard_members(p, self.shardings), shard_members(o, self.shardings), jax.device_put(k, self.shardings[1])

    def predict(self, params, xs, step: int) -> np.ndarray:
        """``(M, N, k)`` predictions on ``xs`` in the members' dtype, in chunks of
        ``runtime.eval_batch_size``; FloatingPointError if any is not finite."""
        b = self.runtime.eval_batch_size
        out = np.concatenate([np.asarray(self._apply(params, jnp.asarray(xs[i:i + b], self.dtype)))
                              for i in range(0, xs.shape[0], b)], axis=1)
        if not np.all(np.isfinite(out)):
            raise FloatingPointError(f"ensemble predictions became non-finite at step {step} "
                                     f"(learning_rate={self.cfg.learning_rate} too large?)")
        return out


def _stops(cfg: TrainConfig) -> list:
    """The steps at which training pauses: record steps, checkpoints, the last step."""
    stops = set(cfg.record_steps) | ({cfg.steps} if cfg.steps else set())
    if cfg.checkpoint_every:
        stops |= set(range(cfg.checkpoint_every, cfg.steps, cfg.checkpoint_every))
    return sorted(stops)


@dataclasses.dataclass(frozen=True)
class TrainingData:
    """What an ensemble trains on and is evaluated at (:func:`train`).

    Attributes:
        x: training inputs ``(N, ...)``, before any augmentation.
        y: targets ``(N, k)``.
        x_eval: evaluation inputs ``(N_eval, ...)``, where member predictions are recorded.
        group: the group of the augmentation (needed for every augmentation but 'none').
    """
    x: Any
    y: Any
    x_eval: Any
    group: Optional[Group] = None


def train(spec: ArchSpec, cfg: TrainConfig, data: TrainingData, *, run_dir: Optional[str | Path] = None,
          progress: bool = True, runtime: Runtime = Runtime()) -> EnsembleResult:
    """Train an ensemble of ``cfg.ensemble_size`` members of ``spec`` on ``data`` and record
    member predictions on ``data.x_eval`` ``(N_eval, ...)`` at ``cfg.record_steps``.

    With ``run_dir`` the run is saved as it goes and resumes from its checkpoint
    (:class:`~ntkequi.runs.TrainingStore`; a directory written with another config is refused:
    use another one). ``spec`` is anything
    with ``.flax()`` and ``out_dim`` (an :class:`ArchSpec` or a baseline spec). How the
    ensemble is computed (devices, vmap or unrolled members, micro-batches, XLA options,
    evaluation chunks) is ``runtime`` (:class:`Runtime`), never what: results equal to
    rounding. Members train in ``cfg.dtype`` (:func:`member_dtype`; float32 by default, whatever the
    process-wide float64 switch): parameters are drawn as in float64 and cast, inputs and
    targets are cast once, and the recorded predictions come back as float64 arrays
    (saved in the run directory in the members' dtype).

    Args:
        spec: the member architecture (``.flax()``, ``out_dim``).
        cfg: optimiser, loss, steps, augmentation, record steps, seed.
        data: the training inputs and targets, the evaluation inputs and the group
            (:class:`TrainingData`).
        run_dir: save and resume here (None: in memory only).
        progress: a progress bar over steps.
        runtime: the speed and device options (:class:`Runtime`).

    Returns:
        An :class:`EnsembleResult`: ``steps (R,)`` and ``members (R, M, N_eval, k)``.

    Raises:
        ValueError: shapes, non-finite data, a missing group, ``k != spec.out_dim``,
            ``cfg.dtype='float64'`` without ``jax_enable_x64``.

    Example: an orbit-augmented MLP ensemble is more invariant than its members.

    >>> import jax; jax.config.update("jax_enable_x64", True)
    >>> from ntkequi import data, groups, kernels, metrics
    >>> from ntkequi.nn import ArchSpec
    >>> c4 = groups.planar_rotations(4)
    >>> x = data.wedge_points(jax.random.PRNGKey(0), 8)
    >>> x_eval = c4.orbit(data.noise_points(jax.random.PRNGKey(1), 4)).reshape(-1, 2)
    >>> spec = ArchSpec(kind="mlp", width=32)
    >>> lr = 0.5 * kernels.max_learning_rate(spec, x, c4)        # half the largest stable step
    >>> cfg = TrainConfig(ensemble_size=8, steps=20, learning_rate=lr, augmentation="orbit", record_steps=(20,))
    >>> res = train(spec, cfg, TrainingData(x, data.radial_target(x), x_eval, c4), progress=False,
    ...             runtime=Runtime(member_map="vmap"))
    >>> res.members.shape
    (1, 8, 16, 1)
    >>> err = lambda f: metrics.equivariance_error(metrics.orbit_predictions(f, c4), c4).relative
    >>> bool(err(res.members[-1].mean(0)) < sum(err(m) for m in res.members[-1]) / 8)
    True
    """
    from tqdm.auto import tqdm

    group = data.group
    x, y, x_eval, dtype = _checked_data(spec, cfg, data.x, data.y, data.x_eval, group)
    engine = _Engine(spec, cfg, group, x, y, dtype, runtime)
    state, step, records, store = engine.initial_state(), 0, {}, None
    if run_dir is not None:
        store = TrainingStore(run_dir, {"arch": spec, "train": cfg, "n_train": int(np.shape(data.x)[0]),
                                        "n_eval": int(x_eval.shape[0]),
                                        "group": None if group is None else group.name})
        state, step, records = store.restore(state)
        state = engine.place(state)
    bar = tqdm(total=cfg.steps, initial=step, desc="ensemble", unit="step", disable=not progress)
    for stop in (s for s in _stops(cfg) if s >= step):
        if stop > step:
            state, step = engine.run(state, stop - step, bar.update), stop
        if stop in cfg.record_steps and stop not in records:
            members = engine.predict(state[0], x_eval, stop)          # (M, N_eval, k), in dtype
            records[stop] = members.astype(np.float64)
            if store is not None:
                store.save_array(stop, members)
        if store is not None:
            store.save_state(state, step)
    bar.close()
    steps = np.asarray(sorted(records))
    return EnsembleResult(steps, np.stack([records[s] for s in steps]), state[0])
