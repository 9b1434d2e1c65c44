"""Make neural-tangents 0.6.5 work on current JAX, without TensorFlow.

This is the only module of ntkequi that touches JAX or neural-tangents internals.
:mod:`ntkequi.nt` calls :func:`apply` and then imports ``neural_tangents``: importing it is
the supported way to get the patched library (``from ntkequi.nt import nt, stax``).
``import ntkequi`` alone applies nothing (ntkequi's own kernels do not need neural-tangents).

neural-tangents 0.6.5 (Dec 2023) is the last release. On JAX 0.10 it breaks in
these places, each fixed here by the smallest change that restores the original
behaviour (no neural-tangents code is copied or forked):

1. ``import neural_tangents`` fails: names were removed from ``jax.core`` (moved to
   ``jax.extend.core``), the module ``jax.util`` is gone, and ``jax.interpreters.ad``
   lost ``zeros_like_p``/``reducing_transposes``/``source_info_util``/``config``.
   -> re-export the names where neural-tangents looks for them.
2. ``import neural_tangents`` imports TensorFlow through
   ``neural_tangents.experimental`` (the TF-conversion module, unused here).
   -> ``neural_tangents.experimental`` becomes a lazy module that imports the real
   one on first attribute access, so TensorFlow is only needed by code that uses it.
3. ``nt.predict.max_learning_rate`` calls ``scipy.linalg.eigvalsh(eigvals=...)``,
   a keyword removed in SciPy 1.14. -> translated to ``subset_by_index``.
4. ``nt.predict.gradient_descent_mse_ensemble`` caches the train-train kernel and
   its eigendecomposition in closures; called under ``jit`` the caches keep
   tracers, and the next call outside that trace fails (UnexpectedTracerError).
   -> a call made while a trace is active uses fresh caches.
5. ``nt.batch`` (which jit-compiles ``kernel_fn``) gives a different diagonal than
   the unbatched kernel for ReLU-type networks: up to 3e-9 relative in float64 and
   6e-5 in float32 (experiments/compat_diagonal.py), also for a batched layer composed with the next layer. The
   cause is the square root of a rounding error in the activation kernels'
   ``prod - nngp**2`` on the diagonal, which is 0 only if the diagonal of
   ``nngp`` equals ``cov1`` bit for bit and no fused multiply-add is used. ->
   before each activation the diagonal of ``nngp`` is set to ``cov1``
   (:func:`_patch_activation_diagonal`; makes un-jitted kernels exact, e.g. for
   rotated copies of an image), and ``nt.batch`` recomputes its diagonal blocks
   un-jitted (:func:`_patch_batch`).
6. ``nt.empirical_ntk_fn(..., implementation=STRUCTURED_DERIVATIVES)`` calls the
   old ``ad.linearize`` contract inside its own ``jax.linearize`` use and reads
   ``Primitive.map_primitive``, and looks up transpose rules that JAX 0.10 keeps
   as accumulator-style "fancy" transposes (e.g. ``slice``, used by CIRCULAR
   padding). -> a local ``ad`` with the old contract, built from public
   ``jax.linearize`` + ``jax.make_jaxpr``, and an adapter for those rules.
7. ``nt.predict.gradient_descent_mse`` computes
   its cached solve and eigendecomposition inside ``jax.core.eval_context()``. Since
   JAX's stackless tracing (0.4.36) that context makes a kernel that is itself a tracer
   (``vmap`` over members building their own finite NTK: neural-tangents'
   testNTKMeanCovPrediction) escape its trace (UnexpectedTracerError). -> the predict
   module sees an ``eval_context`` that is entered only when the kernel it caches is
   concrete (:func:`_patch_predict_eval_context`).
   Also ``nt.batch``'s serial path takes the batched kernel's ``x1_is_x2`` from its first
   block, wrong when x1 != x2 share their first batch (JAX's partitionable threefry, the
   default since 0.5, draws same-key arrays of different lengths as prefixes of each
   other, which neural-tangents' composition tests do) -> set from the inputs
   (:func:`_patch_serial_x1_is_x2`).
8. ``empirical_ntk_fn(..., implementation=AUTO)`` (and ``vmap_axes`` tests through it)
   reads ``compiled.cost_analysis()[0]``; JAX 0.10 returns the dict itself (KeyError
   0). -> ``_get_flops`` accepts both (:func:`_patch_cost_analysis`).

Tested JAX range: see ``SUPPORTED_JAX`` (pyproject pins the same range).
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
import importlib.util
import sys
import types

SUPPORTED_JAX = (">=0.10.2", "<0.11")
NT_VERSION = "0.6.5"

_applied = False


# ----------------------------------------------------------------------------
# 1. import-time names
# ----------------------------------------------------------------------------

def _safe_map(f, *args):
    """``map`` that insists on equal lengths (what ``jax.util.safe_map`` was)."""
    args = list(map(list, args))
    n = len(args[0])
    for a in args[1:]:
        if len(a) != n:
            raise ValueError(f"safe_map: length mismatch {[len(x) for x in args]}")
    return list(map(f, *args))


def _safe_zip(*args):
    """``zip`` that insists on equal lengths (what ``jax.util.safe_zip`` was)."""
    args = list(map(list, args))
    n = len(args[0])
    for a in args[1:]:
        if len(a) != n:
            raise ValueError(f"safe_zip: length mismatch {[len(x) for x in args]}")
    return list(zip(*args))


class _NoDynamicShapes:
    """Stand-in for the removed ``jax.core.DShapedArray``: JAX has no dynamic
    shapes any more, so ``type(a) is DShapedArray`` must simply be False."""


def _patch_jax_names() -> None:
    import jax
    import jax.core as jcore
    import jax.extend.core as jexc
    from jax.interpreters import ad

    for name in ("Jaxpr", "JaxprEqn", "Literal", "Var", "Primitive", "ClosedJaxpr"):
        if not hasattr(jcore, name) and hasattr(jexc, name):
            setattr(jcore, name, getattr(jexc, name))
    if not hasattr(jcore, "get_aval"):
        jcore.get_aval = jax.typeof
    if not hasattr(jcore, "DShapedArray"):
        jcore.DShapedArray = _NoDynamicShapes
    if not hasattr(jcore, "lattice_join"):
        # Only reached with jax_enable_checks; equal avals join to themselves.
        def lattice_join(a, b):
            if a.shape != b.shape or a.dtype != b.dtype:
                raise TypeError(f"cannot join avals {a} and {b}")
            return a
        jcore.lattice_join = lattice_join

    if "jax.util" not in sys.modules:
        try:
            importlib.import_module("jax.util")
        except ImportError:
            util = types.ModuleType("jax.util")
            util.safe_map = _safe_map
            util.safe_zip = _safe_zip
            sys.modules["jax.util"] = util
            jax.util = util

    if not hasattr(ad, "zeros_like_p"):
        # neural-tangents registers a structure rule for this primitive; JAX no
        # longer emits it, so a fresh primitive that never occurs is equivalent.
        ad.zeros_like_p = jexc.Primitive("zeros_like")
    if not hasattr(ad, "reducing_transposes"):
        ad.reducing_transposes = {}
    if not hasattr(ad, "source_info_util"):
        from jax.extend import source_info_util
        ad.source_info_util = source_info_util
    if not hasattr(ad, "config"):
        ad.config = jax.config


# ----------------------------------------------------------------------------
# 2. neural_tangents.experimental without TensorFlow
# ----------------------------------------------------------------------------

class _LazyExperimental(types.ModuleType):
    """Placeholder for ``neural_tangents.experimental`` (TF conversion).

    The real module is imported on first attribute access; that import needs
    TensorFlow and ``tf2jax`` and raises a clear ImportError without them."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        del sys.modules[self.__name__]
        try:
            real = importlib.import_module(self.__name__)
        except ImportError as e:
            sys.modules[self.__name__] = self
            raise ImportError(
                f"neural_tangents.experimental.{name} needs TensorFlow and tf2jax "
                f"({e}); ntkequi does not use it. Install tensorflow tf2jax to use it."
            ) from e
        parent = sys.modules.get("neural_tangents")
        if parent is not None:
            parent.experimental = real
        return getattr(real, name)


def _stub_experimental() -> None:
    name = "neural_tangents.experimental"
    if name not in sys.modules:
        stub = _LazyExperimental(name)
        stub.__path__ = []  # a package, so "from . import experimental" accepts it
        sys.modules[name] = stub


# ----------------------------------------------------------------------------
# 3. max_learning_rate and SciPy's eigvalsh
# ----------------------------------------------------------------------------

class _Overlay:
    """``base`` with some attributes replaced (``overrides``); every other attribute is
    ``base``'s. How a neural-tangents module is given its own view of a library module
    (``scipy``, ``jax``) without changing that module for anyone else."""

    def __init__(self, base, **overrides):
        self._base = base
        self.__dict__.update(overrides)

    def __getattr__(self, name):
        return getattr(self._base, name)


def _patch_scipy_eigvalsh(predict_mod) -> None:
    import scipy
    import scipy.linalg
    if isinstance(predict_mod.sp, _Overlay):
        return

    def eigvalsh(a, *args, eigvals=None, **kwargs):
        if eigvals is not None:
            kwargs["subset_by_index"] = eigvals
        return scipy.linalg.eigvalsh(a, *args, **kwargs)

    predict_mod.sp = _Overlay(scipy, linalg=_Overlay(scipy.linalg, eigvalsh=eigvalsh))


# ----------------------------------------------------------------------------
# 4. gradient_descent_mse_ensemble under JAX transformations
# ----------------------------------------------------------------------------

def _under_trace() -> bool:
    """True while a JAX trace that stages operations (jit, grad of a closure,
    ...) is active: a fresh constant then comes back as a Tracer."""
    import jax
    import jax.numpy as jnp
    return isinstance(jnp.zeros(()) + 0, jax.core.Tracer)


def _patch_predict_ensemble(predict_mod, nt_predict) -> None:
    original = predict_mod.gradient_descent_mse_ensemble
    if getattr(original, "_ntkequi_patched", False):
        return

    @functools.wraps(original)
    def gradient_descent_mse_ensemble(*args, **kwargs):
        persistent = original(*args, **kwargs)

        @functools.wraps(persistent)
        def predict_fn(*a, **k):
            # The original caches the train-train kernel and its
            # eigendecomposition in closures. Inside a trace those would be
            # tracers that outlive it, so a traced call gets fresh caches.
            if _under_trace():
                return original(*args, **kwargs)(*a, **k)
            return persistent(*a, **k)
        return predict_fn

    gradient_descent_mse_ensemble._ntkequi_patched = True
    predict_mod.gradient_descent_mse_ensemble = gradient_descent_mse_ensemble
    nt_predict.gradient_descent_mse_ensemble = gradient_descent_mse_ensemble


# ----------------------------------------------------------------------------
# 5. activation kernels on the diagonal (nt.batch, jit, composition)
# ----------------------------------------------------------------------------

def _patch_activation_diagonal(elementwise_mod) -> None:
    """Activation kernels (ReLU, Erf, Gelu, ...) evaluate functions of
    ``prod - nngp**2`` with ``prod = cov1 * cov2``; for a kernel of a set of
    inputs with itself (``x2=None``) this is exactly 0 on the diagonal in exact
    arithmetic, and e.g. the ReLU kernel takes its square root. neural-tangents
    computes the diagonal of ``nngp`` and the variances ``cov1`` by different
    reductions, so when they differ by one rounding error the square root turns
    it into a ~1e-8 relative error in float64 (~1e-4 in float32). Whether they
    differ depends on XLA's reduction order: always under ``jit`` and so in
    every ``nt.batch``-ed kernel (measured up to 3e-9 / 6e-5 relative on JAX 0.10.2),
    in a batched layer composed with the next one, and for some inputs eagerly
    (e.g. a rotated copy of an image, off by a similar amount), which breaks the exact permutation
    symmetry of orbit-augmented kernels. (Under jit a fused multiply-add can
    still leave a rounding error; :func:`_patch_batch` handles ``nt.batch``.)

    Fix: before every activation layer of a kernel with ``x2=None``
    (``cov2 is None``), the diagonal of ``nngp`` is set to ``cov1``, which is what
    it is mathematically. (``kernel_fn(x, x)`` with ``x2`` given is left as
    neural-tangents computes it; pass ``None``.)"""
    original = elementwise_mod._elementwise
    if getattr(original, "_ntkequi_patched", False):
        return
    import jax.numpy as jnp

    def _exact_diagonal(k):
        nngp, cov1 = k.nngp, k.cov1
        if (nngp is None or cov1 is None or nngp.ndim < 2
                or nngp.shape[0] != nngp.shape[1] or nngp.shape[2:] != cov1.shape[1:]):
            return k
        if k.cov2 is not None:
            # x2 was given. Kernel.slice (used by nt.batch) keeps a stale
            # x1_is_x2=True on off-diagonal blocks, so that flag cannot be used.
            return k
        i = jnp.arange(nngp.shape[0])
        return k.replace(nngp=nngp.at[i, i].set(cov1))

    @functools.wraps(original)
    def _elementwise(fn, name, kernel_fn):
        if kernel_fn is not None:
            layer_kernel_fn = kernel_fn

            @functools.wraps(layer_kernel_fn)
            def kernel_fn(k, *args, **kwargs):
                return layer_kernel_fn(_exact_diagonal(k), *args, **kwargs)
        return original(fn, name, kernel_fn)

    _elementwise._ntkequi_patched = True
    elementwise_mod._elementwise = _elementwise


def _patch_batch(batching_mod, nt) -> None:
    """``nt.batch`` jit-compiles ``kernel_fn``; under jit XLA fuses
    ``cov1 * cov2 - nngp**2`` into a fused multiply-add, so even with an exact
    diagonal the activation kernels see a rounding error instead of 0 there.
    For ``x2=None`` the diagonal blocks are therefore recomputed with the
    un-jitted ``kernel_fn`` (exact after :func:`_patch_activation_diagonal`);
    off-diagonal blocks (``x_i != x_j``) are unaffected. Works for input arrays
    and for a batched layer applied to an incoming ``Kernel`` (composition)."""
    original = batching_mod.batch
    if getattr(original, "_ntkequi_patched", False):
        return
    import jax
    import numpy as np
    from neural_tangents._src.utils.kernel import Kernel

    def _is_array(v):
        return isinstance(v, (np.ndarray, jax.Array))

    def _block_kwargs(kwargs, s):
        """``kwargs`` of the diagonal block ``s`` (a slice of both inputs): per-input
        arrays ``(v1, v2)`` sliced as ``nt.batch`` slices them, other values as they are;
        None where ``nt.batch`` splits a key (``rng``: its blocks then are not recomputed)."""
        out = {}
        for key, v in kwargs.items():
            if key == "rng" and v is not None:
                return None
            if isinstance(v, tuple) and len(v) == 2 and any(_is_array(u) for u in v):
                out[key] = tuple(u[s] if _is_array(u) else u for u in v)
            else:
                out[key] = v
        return out

    def _set_blocks(full, diag_blocks, bs, pairwise=True):
        if full is None or any(b is None for b in diag_blocks):
            return full
        for b, blk in enumerate(diag_blocks):
            s = slice(b * bs, b * bs + blk.shape[0])
            full = full.at[(s, s) if pairwise else s].set(blk)
        return full

    @functools.wraps(original)
    def batch(kernel_fn, batch_size=0, device_count=-1, store_on_device=True):
        batched = original(kernel_fn, batch_size, device_count, store_on_device)

        @functools.wraps(batched)
        def batched_kernel_fn(x1_or_kernel, *args, **kwargs):
            if isinstance(x1_or_kernel, Kernel):
                out = batched(x1_or_kernel, *args, **kwargs)
                k = x1_or_kernel
                if k.cov2 is not None:          # x1 != x2: no diagonal to fix
                    return out
                n = k.nngp.shape[0]
                bs = batch_size if 0 < batch_size < n else n
                kws = [_block_kwargs(kwargs, slice(s, s + bs)) for s in range(0, n, bs)]
                if any(kw is None for kw in kws):
                    return out
                blocks = [kernel_fn(k.slice(slice(s, s + bs), slice(s, s + bs)), *args, **kw)
                          for s, kw in zip(range(0, n, bs), kws)]
            elif isinstance(x1_or_kernel, (np.ndarray, jax.Array)):
                x1 = x1_or_kernel
                x2, rest = (args[0], args[1:]) if args else (kwargs.pop("x2", None), ())
                if x2 is x1:
                    x2 = None
                out = batched(x1, x2, *rest, **kwargs)
                if x2 is not None:
                    return out
                n = x1.shape[0]
                bs = batch_size if 0 < batch_size < n else n
                kws = [_block_kwargs(kwargs, slice(s, s + bs)) for s in range(0, n, bs)]
                if any(kw is None for kw in kws):
                    return out
                blocks = [kernel_fn(x1[s:s + bs], None, *rest, **kw) for s, kw in zip(range(0, n, bs), kws)]
            else:
                return batched(x1_or_kernel, *args, **kwargs)
            if isinstance(out, jax.Array):
                return _set_blocks(out, blocks, bs)
            fields = {f: _set_blocks(getattr(out, f), [getattr(b, f) for b in blocks], bs)
                      for f in ("nngp", "ntk") if getattr(out, f, None) is not None}
            if isinstance(out, Kernel):
                fields["cov1"] = _set_blocks(out.cov1, [b.cov1 for b in blocks], bs, False)
                return out.replace(**fields)
            return out._replace(**fields)
        return batched_kernel_fn

    batch._ntkequi_patched = True
    batching_mod.batch = batch
    nt.batch = batch


# ----------------------------------------------------------------------------
# 6. structured-derivatives empirical NTK and the new jax linearize
# ----------------------------------------------------------------------------

class _KnownPVal:
    """The one method of the old ``PartialVal`` that neural-tangents calls."""

    def __init__(self, known: bool):
        self._known = known

    def is_known(self) -> bool:
        return self._known


def _linearize_to_jaxpr(fn_flat, *primals, has_aux=False):
    """Old ``ad.linearize`` contract: (primals_out, out_pvals, jaxpr, consts),
    ``jaxpr`` being the linear (tangent) map as a first-order jaxpr.

    JAX 0.10's ``ad.linearize`` takes a flat-tree argument and returns another
    structure, so neural-tangents' call fails ("got multiple values for
    'has_aux'"). Here the public ``jax.linearize`` gives the linear map and
    ``jax.make_jaxpr`` stages it out; every output tangent is unknown."""
    import jax
    if has_aux:
        raise NotImplementedError("has_aux is not used by neural-tangents")
    out, f_lin = jax.linearize(lambda *p: fn_flat.call_wrapped(*p), *primals)
    closed = jax.make_jaxpr(f_lin)(*primals)
    return out, [_KnownPVal(False) for _ in out], closed.jaxpr, list(closed.consts)


class _AdWithOldLinearize:
    """``jax.interpreters.ad`` as seen by neural-tangents' empirical module."""

    linearize = staticmethod(_linearize_to_jaxpr)

    def __init__(self, ad):
        self._ad = ad

    def __getattr__(self, name):
        return getattr(self._ad, name)

    def get_primitive_transpose(self, prim):
        """Old-style transpose rule ``rule(ct, *invals, **params) -> cts``.

        JAX 0.10 moved some rules (``slice``, ``dynamic_slice``, calls, ...) to
        accumulator-style "fancy" transposes; those are adapted here."""
        from jax._src.interpreters import ad as _ad
        if prim in _ad.primitive_transposes:
            return _ad.primitive_transposes[prim]
        fancy = _ad.fancy_transposes.get(prim)
        if fancy is None:
            return _ad.get_primitive_transpose(prim)   # raises JAX's own error

        def rule(cts_in, *invals, **params):
            accs = [_ad.ValAccum(x.aval) if isinstance(x, _ad.UndefinedPrimal) else x
                    for x in invals]
            fancy(cts_in, *accs, **params)
            return [a.freeze() if isinstance(a, _ad.ValAccum) else None for a in accs]
        return rule


def _patch_structured_derivatives(empirical_mod) -> None:
    import jax.extend.core as jexc
    from jax.interpreters import ad
    if not isinstance(empirical_mod.ad, _AdWithOldLinearize):
        empirical_mod.ad = _AdWithOldLinearize(ad)
    if not hasattr(jexc.Primitive, "map_primitive"):
        # Removed with pmap-as-primitive; no primitive is a map primitive now.
        jexc.Primitive.map_primitive = False


# ----------------------------------------------------------------------------
# 7. eval_context around caches of a traced kernel (gradient_descent_mse under vmap)
# ----------------------------------------------------------------------------

_TRACED_KERNEL = contextvars.ContextVar("ntkequi_traced_kernel", default=False)


def _patch_predict_eval_context(predict_mod, nt_predict) -> None:
    """neural-tangents' predict module sees a ``jax.core.eval_context()`` that is JAX's own,
    except while a predictor built from a traced kernel runs, where it does nothing (its
    cached solve belongs to that trace)."""
    import jax
    if isinstance(predict_mod.jax, _Overlay):
        return

    def eval_context():
        return contextlib.nullcontext() if _TRACED_KERNEL.get() else jax.core.eval_context()

    predict_mod.jax = _Overlay(jax, core=_Overlay(jax.core, eval_context=eval_context))
    original = predict_mod.gradient_descent_mse

    @functools.wraps(original)
    def gradient_descent_mse(k_train_train, y_train, *args, **kwargs):
        fn = original(k_train_train, y_train, *args, **kwargs)
        leaves = jax.tree_util.tree_leaves((k_train_train, y_train))
        if not any(isinstance(leaf, jax.core.Tracer) for leaf in leaves):
            return fn

        @functools.wraps(fn)
        def predict_fn(*a, **k):
            token = _TRACED_KERNEL.set(True)
            try:
                return fn(*a, **k)
            finally:
                _TRACED_KERNEL.reset(token)
        return predict_fn

    predict_mod.gradient_descent_mse = nt_predict.gradient_descent_mse = gradient_descent_mse


def _patch_serial_x1_is_x2(batching_mod) -> None:
    """``batching._serial`` (under ``nt.batch``): the output Kernel's ``x1_is_x2`` is that
    of the inputs (nt's own ``utils.x1_is_x2``, or the incoming Kernel's), not of block
    (0, 0)."""
    original = batching_mod._serial
    if getattr(original, "_ntkequi_patched", False):
        return
    from neural_tangents._src.utils import utils
    from neural_tangents._src.utils.kernel import Kernel

    @functools.wraps(original)
    def _serial(kernel_fn, batch_size, store_on_device=True):
        serial_fn = original(kernel_fn, batch_size, store_on_device)

        @functools.wraps(serial_fn)
        def fixed(x1_or_kernel, *args, **kwargs):
            out = serial_fn(x1_or_kernel, *args, **kwargs)
            if not isinstance(out, Kernel):
                return out
            if isinstance(x1_or_kernel, Kernel):
                return out.replace(x1_is_x2=x1_or_kernel.x1_is_x2)
            x2 = args[0] if args else kwargs.get("x2")
            return out.replace(x1_is_x2=utils.x1_is_x2(x1_or_kernel, x2))
        return fixed

    _serial._ntkequi_patched = True
    batching_mod._serial = _serial


# ----------------------------------------------------------------------------
# 8. compiled cost analysis (empirical NTK implementation AUTO)
# ----------------------------------------------------------------------------

def _patch_cost_analysis(empirical_mod) -> None:
    original = empirical_mod._get_flops
    if getattr(original, "_ntkequi_patched", False):
        return
    import jax

    @functools.wraps(original)
    def _get_flops(f, optimize, *a, **kw):
        lowered = jax.jit(f).lower(*a, **kw)
        analysis = lowered.compile().cost_analysis() if optimize else lowered.cost_analysis()
        if isinstance(analysis, (list, tuple)):     # JAX < 0.4.36: one dict per device
            analysis = analysis[0]
        return analysis["flops"]

    _get_flops._ntkequi_patched = True
    empirical_mod._get_flops = _get_flops


def apply() -> None:
    """Apply every fix, then import neural-tangents. Idempotent."""
    global _applied
    if _applied:
        return
    if "neural_tangents" in sys.modules and "neural_tangents._src" not in sys.modules:
        raise ImportError("neural_tangents was partially imported before ntkequi's "
                          "compatibility fixes; import ntkequi.nt first.")
    if importlib.util.find_spec("neural_tangents") is None:
        raise ImportError(
            "neural-tangents is not installed. ntkequi installs it without its "
            "TensorFlow dependency: pip install --no-deps neural-tangents==0.6.5")
    _patch_jax_names()
    _stub_experimental()
    # activation layers must be patched before stax builds any of them
    _patch_activation_diagonal(importlib.import_module("neural_tangents._src.stax.elementwise"))
    import neural_tangents  # noqa: F401
    from neural_tangents._src import predict as predict_mod
    _patch_scipy_eigvalsh(predict_mod)
    _patch_predict_ensemble(predict_mod, neural_tangents.predict)
    _patch_predict_eval_context(predict_mod, neural_tangents.predict)
    batching_mod = importlib.import_module("neural_tangents._src.batching")
    _patch_serial_x1_is_x2(batching_mod)
    _patch_batch(batching_mod, neural_tangents)
    empirical_mod = importlib.import_module("neural_tangents._src.empirical")
    _patch_structured_derivatives(empirical_mod)
    _patch_cost_analysis(empirical_mod)
    _applied = True


def stax_layer_api():
    """neural-tangents' (internal, unexported) helpers for writing a stax layer with its own
    kernel recursion: ``(Bool, Diagonal, layer, requires, utils)`` from
    ``neural_tangents._src.stax.requirements`` and ``neural_tangents._src.utils``. Kept here
    so that this module stays the only one touching neural-tangents' internals; used by
    :mod:`ntkequi.kernels.group_stax`."""
    apply()
    from neural_tangents._src.stax.requirements import Bool, Diagonal, layer, requires
    from neural_tangents._src.utils import utils
    return Bool, Diagonal, layer, requires, utils
