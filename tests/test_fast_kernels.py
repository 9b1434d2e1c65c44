"""ntkequi's own NNGP/NTK recursions (ntkequi.kernels.recursions) against neural-tangents'
kernel of the same ArchSpec: exact to 1e-10 in float64 for every layer combination an ArchSpec
allows, float32 to float32 rounding, rotation invariance, tiling, and the solvers unchanged."""
import contextlib
import dataclasses
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkequi import groups
from ntkequi.kernels import KernelTooLargeError, closed_forms, predict
from ntkequi.kernels._common import intermediate_bytes, kernel_memory_bytes
from ntkequi.kernels.recursions import RecursionKernelFn, recursion_kernel_fn
from ntkequi.nn import ArchSpec

TOL64 = 1e-10


@contextlib.contextmanager
def _float64():
    """The comparisons in float64 (conftest enables x64 for the whole suite)."""
    assert jax.config.jax_enable_x64
    yield


def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def _compare(spec, shape1, shape2, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=shape1).astype(dtype)
    x2 = rng.normal(size=shape2).astype(dtype)
    fast, ref = spec.kernel_fn, spec.kernel_fn_nt
    errs = {}
    for name, b in (("sym", None), ("cross", x2)):
        f, r = fast(x1, b, ("nngp", "ntk")), ref(x1, b, ("nngp", "ntk"))
        for g in ("nngp", "ntk"):
            fv, rv = np.asarray(getattr(f, g)), np.asarray(getattr(r, g))
            assert fv.shape == rv.shape
            errs[f"{name} {g}"] = _rel(fv, rv)
            if b is None:
                errs[f"diag {g}"] = float(np.max(np.abs(np.diag(fv) - np.diag(rv)) / np.abs(np.diag(rv))))
    return errs


def test_arccos_and_arcsin_are_accurate_to_rounding():
    c = np.concatenate([np.linspace(-1, 1, 200001), [-1.0, -0.5, 0.5, 1.0, 1 - 1e-16, -1 + 1e-16, 1e-300]])
    with _float64():
        acos = np.asarray(closed_forms.arccos(jnp.asarray(c)))
        asin = np.asarray(closed_forms.arcsin(jnp.asarray(c)))
    assert np.max(np.abs(acos - np.arccos(c))) < 4e-15       # a few units of rounding of pi
    assert np.max(np.abs(asin - np.arcsin(c))) < 4e-15
    assert np.max(np.abs(asin - np.arcsin(c)) / np.maximum(np.abs(np.arcsin(c)), 1e-300)) < 1e-14
    c32 = c.astype(np.float32)
    acos32 = np.asarray(closed_forms.arccos(jnp.asarray(c32)))
    assert acos32.dtype == np.float32
    assert np.max(np.abs(acos32 - np.arccos(c32.astype(np.float64)))) < 1e-6


def test_relu_and_erf_expectations_match_monte_carlo():
    """Closed forms against an independent estimate from Gaussian samples."""
    rng = np.random.default_rng(0)
    q1, q2, s = 1.3, 0.7, 0.6
    z = rng.multivariate_normal([0, 0], [[q1, s], [s, q2]], size=2_000_000)
    from scipy.special import erf
    with _float64():
        for act, phi, dphi in (("relu", lambda u: np.maximum(u, 0), lambda u: (u > 0) * 1.0),
                               ("erf", erf, lambda u: 2 / np.sqrt(np.pi) * np.exp(-u * u))):
            k, kdot = closed_forms.expectations(act, jnp.asarray(s), jnp.asarray(q1), jnp.asarray(q2))
            mc_k = np.mean(phi(z[:, 0]) * phi(z[:, 1]))
            mc_kdot = np.mean(dphi(z[:, 0]) * dphi(z[:, 1]))
            assert abs(float(k) - mc_k) < 4e-3, (act, float(k), mc_k)
            assert abs(float(kdot) - mc_kdot) < 4e-3, (act, float(kdot), mc_kdot)


def _all_specs():
    """Every layer combination an ArchSpec allows with a closed-form activation."""
    out = []
    for act, depth in itertools.product(("relu", "erf"), (1, 2)):
        out.append((ArchSpec(kind="mlp", depth=depth, activation=act, b_std=0.3), (5,)))
    for act, depth, pad, readout, pool in itertools.product(("relu", "erf"), (1, 2), ("SAME", "CIRCULAR"),
                                                            ("flatten", "gap"), (False, True)):
        out.append((ArchSpec(kind="cnn", depth=depth, activation=act, padding=pad, readout=readout,
                             pool=pool, b_std=0.3), None))
    return out


# a cheap representative subset runs by default; the whole product is marked slow
FAST = [
    (ArchSpec(kind="mlp", depth=3, activation="relu", b_std=0.3), (7,)),
    (ArchSpec(kind="cnn", depth=2, activation="relu", readout="flatten", pool=True, b_std=0.2), (9, 9, 2)),
    (ArchSpec(kind="cnn", depth=2, activation="erf", readout="gap", b_std=0.2), (6, 6, 1)),
    (ArchSpec(kind="cnn", depth=2, activation="relu", padding="CIRCULAR", readout="flatten", b_std=0.2), (5, 5, 3)),
    (ArchSpec(kind="cnn", depth=2, activation="relu", padding="CIRCULAR", pool=True, readout="gap"), (7, 7, 1)),
    # three pools: the flatten band would be wider than the full covariance, so the full one is used
    (ArchSpec(kind="cnn", depth=3, activation="relu", pool=True, readout="flatten"), (8, 8, 1)),
]


@pytest.mark.parametrize("spec,event", FAST)
def test_equal_to_neural_tangents_in_float64(spec, event):
    with _float64():
        errs = _compare(spec, (3,) + event, (2,) + event)
    assert max(errs.values()) < TOL64, errs


@pytest.mark.slow
@pytest.mark.parametrize("size", [5, 8])
@pytest.mark.parametrize("spec,event", _all_specs(), ids=lambda v: "" if v is None else str(v)[:0])
def test_equal_to_neural_tangents_in_float64_every_layer_combination(spec, event, size):
    event = event or (size, size, 2)
    with _float64():
        errs = _compare(spec, (3,) + event, (2,) + event, seed=size)
    assert max(errs.values()) < TOL64, (spec, errs)


@pytest.mark.slow
@pytest.mark.parametrize("spec", [
    ArchSpec(kind="cnn", depth=2, readout="flatten"),
    ArchSpec(kind="cnn", depth=2, readout="flatten", pool=True),
    ArchSpec(kind="cnn", depth=2, readout="gap", pool=True),
    ArchSpec(kind="cnn", depth=1, readout="gap"),
])
def test_equal_to_neural_tangents_on_28x28_images(spec):
    with _float64():
        errs = _compare(spec, (2, 28, 28, 1), (2, 28, 28, 1))
    assert max(errs.values()) < TOL64, errs


def test_float32_agrees_to_float32_rounding():
    spec = ArchSpec(kind="cnn", depth=2, pool=True, readout="flatten", b_std=0.2)
    rng = np.random.default_rng(1)
    x1 = rng.normal(size=(4, 8, 8, 1))
    x2 = rng.normal(size=(3, 8, 8, 1))
    with _float64():
        ref = spec.kernel_fn_nt(x1, x2, ("nngp", "ntk"))
        ref_sym = spec.kernel_fn_nt(x1, None, "ntk")
    fast = spec.kernel_fn(x1.astype(np.float32), x2.astype(np.float32), ("nngp", "ntk"))
    fast_sym = spec.kernel_fn(x1.astype(np.float32), None, "ntk")
    assert fast.ntk.dtype == jnp.float32
    for got, want in ((fast.nngp, ref.nngp), (fast.ntk, ref.ntk), (fast_sym, ref_sym)):
        assert _rel(got, want) < 2e-6


def test_invariant_under_simultaneous_exact_rotation():
    from ntkequi.kernels import kernel_invariance_error
    c4 = groups.rotations(4, shape=(8, 8))
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 8, 8, 1))
    with _float64():
        x = x.astype(jnp.float64)
        for spec in (ArchSpec(kind="cnn", depth=2, pool=True), ArchSpec(kind="cnn", depth=2, readout="gap")):
            err = kernel_invariance_error(spec.kernel_fn, c4, x, x[:2][::-1])
            assert np.max(err) < 1e-13, (spec, err)


def test_tiles_give_the_same_kernel_and_symmetric_pairs_are_mirrored():
    spec = ArchSpec(kind="cnn", depth=2, pool=True, b_std=0.1)
    rng = np.random.default_rng(2)
    x1, x2 = rng.normal(size=(11, 6, 6, 1)), rng.normal(size=(5, 6, 6, 1))
    with _float64():
        one = spec.kernel_fn
        tiny = recursion_kernel_fn(spec.layers(), block_bytes=1)  # 1 pair a tile
        small = recursion_kernel_fn(spec.layers(), block_bytes=300_000)
        per_pair = small.plan((6, 6, 1)).floats_per_pair * 8 * 6
        assert per_pair < 300_000 < 11 * 11 * per_pair          # several pairs a tile, many tiles
        for a, b in ((x1, None), (x1, x2)):
            ref = np.asarray(one(a, b, "ntk"))
            for k in (tiny, small):
                np.testing.assert_allclose(np.asarray(k(a, b, "ntk")), ref, rtol=1e-13, atol=0)
        sym = np.asarray(small(x1, None, "ntk"))
        assert np.array_equal(sym, sym.T)


def test_jit_traceable_and_namedtuple_results():
    spec = ArchSpec(kind="cnn", depth=1, readout="gap")
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 5, 5, 1))
    k = spec.kernel_fn(x, None)
    assert set(k._fields) == {"nngp", "ntk"}
    jitted = jax.jit(spec.kernel_fn, static_argnums=2)(x, x[:2], "ntk")
    np.testing.assert_allclose(jitted, spec.kernel_fn(x, x[:2], "ntk"), rtol=1e-6)


def test_gelu_falls_back_to_neural_tangents():
    spec = ArchSpec(kind="mlp", depth=2, activation="gelu")
    assert not isinstance(spec.kernel_fn, RecursionKernelFn)
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 4))
    np.testing.assert_array_equal(spec.kernel_fn(x, None, "ntk"), spec.kernel_fn_nt(x, None, "ntk"))
    with pytest.raises(ValueError, match="gelu"):
        recursion_kernel_fn(spec.layers())


@pytest.mark.parametrize("call,match", [
    (lambda k: k(np.zeros((2, 5, 5)), None, "ntk"), r"\(N, H, W, C\).*\(5, 5\)"),
    (lambda k: k(np.zeros((2, 5, 5, 1)), np.zeros((2, 6, 6, 1)), "ntk"), r"\(6, 6, 1\).*\(5, 5, 1\)"),
    (lambda k: k(np.zeros((2, 5, 5, 1)), None, "cov"), "'cov'"),
    (lambda k: k(np.zeros((2, 5, 5, 1)), None, "ntk", diagonal_axes=(0,)), "diagonal_axes"),
])
def test_bad_input_names_the_value(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call(ArchSpec(kind="cnn", depth=1).kernel_fn)


def test_too_small_image_for_the_pooling_is_refused():
    spec = ArchSpec(kind="cnn", depth=2, pool=True)
    with pytest.raises(ValueError, match="too small"):
        spec.kernel_fn(np.zeros((2, 3, 3, 1)), None, "ntk")


def test_declared_intermediate_reaches_the_memory_guard():
    spec = ArchSpec(kind="cnn", depth=2, readout="gap")
    kfn = spec.kernel_fn
    declared = intermediate_bytes(kfn, (28, 28, 1), 8, 64 ** 2)
    assert declared == max(kfn.block_bytes, 28 ** 4 * 8 * 6)
    assert intermediate_bytes(kfn, (28, 28, 1), 8, 1) == 28 ** 4 * 8 * 6
    # neural-tangents' accounting (P^2 floats for every pair at once) would need ~80 GB for 64 images
    assert kernel_memory_bytes(64, 8, 8, spec.kernel_entries_per_pair((28, 28, 1))) > 50e9
    assert kernel_memory_bytes(64, 8, 8, intermediate=declared) < 100e6
    x = np.zeros((4, 28, 28, 1))
    with pytest.raises(KernelTooLargeError, match="needs about"):
        predict(spec, x, np.zeros((4, 1)), x, 1.0, max_bytes=declared // 2)


# slow (about 70 s, all compilation): it follows from test_structured's structured == direct on the
# C4 CNN and the float64 tests above (ntkequi's kernel == neural-tangents'); kept for a direct check
@pytest.mark.slow
def test_structured_solver_unchanged_with_the_new_kernel():
    spec = ArchSpec(kind="cnn", depth=2, pool=True, out_dim=1, b_std=0.1)
    c4 = groups.rotations(4, shape=(8, 8))        # 8 -> 4 -> 2: every pooled size even, exact
    with _float64():
        x = jax.random.normal(jax.random.PRNGKey(0), (3, 8, 8, 1), dtype=jnp.float64)
        y = jnp.linspace(-1, 1, 3)[:, None]
        xt = jax.random.normal(jax.random.PRNGKey(1), (2, 8, 8, 1), dtype=jnp.float64)
        ts = [1.0, float("inf")]
        new = predict(spec, x, y, xt, ts, group=c4, solver="structured", compute_cov=True)
        # neural-tangents' kernel on the direct path (its pooled-CNN kernel under jit, which the
        # structured path uses, crashes XLA:CPU for 4 or more 8x8 images: a segfault, 2026-12-02)
        old = predict(spec.kernel_fn_nt, x, y, xt, ts, group=c4, solver="direct", compute_cov=True)
        direct = predict(spec, x, y, xt, ts, group=c4, solver="direct", compute_cov=True)
    assert _rel(new.mean, old.mean) < 1e-9
    assert _rel(new.cov, old.cov) < 1e-9
    assert _rel(direct.mean, old.mean) < 1e-10


def test_plan_uses_a_band_for_flatten_and_the_full_covariance_for_gap():
    kfn = ArchSpec(kind="cnn", depth=2, pool=True).kernel_fn
    plan = kfn.plan((28, 28, 1))
    assert plan.rep == "band"
    # offsets |d| <= 3 at the input, 1 after the first pool, 0 after the second
    assert [r for r, layer in zip(plan.radii, plan.layers) if layer.kind == "conv"] == [(3, 3), (1, 1)]
    assert plan.floats_per_pair == 28 * 28 * 7 * 7
    gap = dataclasses.replace(ArchSpec(kind="cnn", depth=2, pool=True), readout="gap").kernel_fn.plan((28, 28, 1))
    assert gap.rep == "full" and gap.floats_per_pair == 28 ** 4
    deep = ArchSpec(kind="cnn", depth=4, pool=True).kernel_fn.plan((28, 28, 1))
    assert deep.rep == "full"            # band half-width 15 at the input: 31^2 offsets > 28^2 pixels


def test_device_choice_is_checked_and_one_device_is_the_plain_path():
    """``devices`` names a bad choice; ``devices=1`` (and the default on a one-device machine)
    is the single-device path, on the first device."""
    import jax
    from ntkequi.kernels.recursions import kernel_mesh
    spec = ArchSpec(kind="cnn", depth=1, width=1, pool=True, b_std=0.1)
    n = jax.local_device_count()
    for bad in (0, n + 1, [], ["gpu0"]):
        with pytest.raises(ValueError, match="devices must be"):
            spec.kernel_fn.with_devices(bad)
    assert kernel_mesh(1) is None and kernel_mesh(jax.local_devices()[:1]) is None
    x = np.random.default_rng(0).normal(size=(3, 4, 4, 1))
    one = spec.kernel_fn.with_devices(1)
    assert one != spec.kernel_fn and one == spec.kernel_fn.with_devices(1)
    assert (kernel_mesh(None) is None) == (n == 1)          # the default spreads only over several devices
    assert one(x, None, "ntk").sharding.device_set == {jax.local_devices()[0]}


def test_tile_size_and_budget_follow_a_devices_own_memory(monkeypatch):
    """On devices that report their own memory (GPUs, TPUs; stand-ins here) the budget is 3/4 of
    the smallest one's and a tile 1/32 of it; on CPUs (no report) half the host memory and the
    8 MiB cache-sized tile; the refusal names the size per device and where it came from."""
    from ntkequi.kernels import KernelTooLargeError
    from ntkequi.kernels._common import MemoryBudget, budget_source, device_memory_bytes, memory_budget_bytes
    from ntkequi.kernels.recursions import DEFAULT_BLOCK_BYTES, default_block_bytes

    class Gpu:
        device_kind = "stand-in GPU"

        def __init__(self, size):
            self.size = size

        def memory_stats(self):
            return {"bytes_limit": self.size, "bytes_in_use": 0}

    monkeypatch.delenv("NTKEQUI_MAX_KERNEL_BYTES", raising=False)
    gpus = [Gpu(80 << 30), Gpu(40 << 30)]
    assert device_memory_bytes(gpus) == 40 << 30
    assert memory_budget_bytes(gpus) == int(0.75 * (40 << 30))
    assert default_block_bytes(gpus) == (40 << 30) // 32
    assert default_block_bytes([Gpu(1 << 20)]) == DEFAULT_BLOCK_BYTES          # never below the CPU tile
    if jax.default_backend() == "cpu":
        assert device_memory_bytes() is None and default_block_bytes() == DEFAULT_BLOCK_BYTES
        assert ArchSpec(kind="cnn").kernel_fn.block_bytes == DEFAULT_BLOCK_BYTES
        assert "host" in budget_source()
    monkeypatch.setattr(jax, "local_devices", lambda: gpus)
    assert "stand-in GPU device's 40.0 GiB" in budget_source()
    with pytest.raises(KernelTooLargeError, match=r"per device \(budget 30.0 GiB per device: 3/4 of each stand-in GPU"):
        MemoryBudget().require(50 << 30, "a kernel", "use fewer inputs")


@pytest.mark.parametrize("spec,shape", [
    (ArchSpec(kind="mlp", depth=2, out_dim=3), (3, 8, 8, 1)),
    (ArchSpec(kind="cnn", depth=2, pool=True, readout="flatten"), (3, 8, 8, 1)),
    (ArchSpec(kind="cnn", depth=1, readout="gap", activation="erf"), (3, 6, 6, 1)),
])
def test_derivative_in_the_first_input_is_the_difference_quotient(spec, shape):
    """jax.jvp of the kernel in its first argument (what the Lie derivative of a kernel mean
    needs) is finite and equals the symmetric difference quotient to 1e-8 (relative): the
    closed forms' square roots at correlation exactly 1 (each input with itself) take derivative
    0 there, where the correlation's own tangent is 0, instead of inf * 0."""
    from ntkequi import metrics
    rng = np.random.default_rng(0)
    x, xt = jnp.asarray(rng.normal(size=shape)), jnp.asarray(rng.normal(size=(4,) + shape[1:]))
    v = metrics.rotation_generator(x)
    f = lambda a: jnp.asarray(spec.kernel_fn(a, xt, "ntk"))                        # noqa: E731
    _, dk = jax.jvp(f, (x,), (v,))
    eps = 1e-5
    fd = (np.asarray(f(x + eps * v)) - np.asarray(f(x - eps * v))) / (2 * eps)
    assert np.all(np.isfinite(np.asarray(dk)))
    assert np.abs(np.asarray(dk) - fd).max() < 1e-8 * np.abs(fd).max()
