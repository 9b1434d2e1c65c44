"""Every neural-tangents feature ntkequi uses, on the pinned JAX, without TensorFlow."""
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkequi import _compat
from ntkequi.nt import nt, stax

MLP = stax.serial(stax.Dense(64, 1.5, 0.1), stax.Relu(), stax.Dense(64, 1.5, 0.1), stax.Relu(),
                  stax.Dense(1, 1.5, 0.1))
CNN = stax.serial(stax.Conv(16, (3, 3), padding="SAME"), stax.Relu(),
                  stax.Conv(16, (3, 3), padding="CIRCULAR"), stax.Erf(), stax.Flatten(), stax.Dense(2))


def _x(shape, seed=0):
    return jax.random.normal(jax.random.PRNGKey(seed), shape)


def test_installed_neural_tangents_is_the_pinned_one():
    from importlib import metadata
    assert metadata.version("neural-tangents") == _compat.NT_VERSION


def test_imports_and_runs_without_tensorflow():
    code = textwrap.dedent("""
        import sys
        sys.modules['tensorflow'] = None   # make `import tensorflow` fail
        sys.modules['tf2jax'] = None
        import ntkequi
        from ntkequi.nt import nt, stax
        import jax.numpy as jnp
        k = stax.serial(stax.Dense(8), stax.Relu(), stax.Dense(1))[2](jnp.ones((2, 3)), None, 'ntk')
        assert k.shape == (2, 2)
        assert sys.modules.get('tensorflow') is None
        try:
            nt.experimental.empirical_ntk_fn_tf
        except ImportError as e:
            assert 'TensorFlow' in str(e), e
        else:
            raise AssertionError('expected ImportError')
        print('OK')
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "OK" in out.stdout


def _relu_nngp_one_layer(x1, x2, w, b):
    """Closed form (Cho & Saul arc-cosine) NNGP of Dense(w,b)-ReLU-Dense(w,b) on inputs."""
    d = x1.shape[1]
    k12 = w**2 * x1 @ x2.T / d + b**2
    k11 = w**2 * np.sum(x1 * x1, 1) / d + b**2
    k22 = w**2 * np.sum(x2 * x2, 1) / d + b**2
    norm = np.sqrt(np.outer(k11, k22))
    c = np.clip(k12 / norm, -1, 1)
    th = np.arccos(c)
    relu = norm * (np.sin(th) + (np.pi - th) * c) / (2 * np.pi)
    return w**2 * relu + b**2


def test_stax_mlp_kernel_matches_closed_form():
    x1, x2 = np.asarray(_x((5, 4))), np.asarray(_x((3, 4), 1))
    kfn = stax.serial(stax.Dense(10, 1.3, 0.2), stax.Relu(), stax.Dense(1, 1.3, 0.2))[2]
    np.testing.assert_allclose(kfn(x1, x2, "nngp"), _relu_nngp_one_layer(x1, x2, 1.3, 0.2),
                               rtol=1e-12)


def test_stax_cnn_kernel_is_a_valid_covariance():
    x = _x((6, 5, 5, 2))
    k = CNN[2](x, None, ("nngp", "ntk"))
    for m in (k.nngp, k.ntk):
        np.testing.assert_allclose(m, m.T, atol=1e-12)
        assert float(jnp.linalg.eigvalsh(m).min()) > -1e-10


@pytest.mark.parametrize("arch,shape", [(MLP, (12, 3)), (CNN, (8, 5, 5, 2))])
@pytest.mark.parametrize("get", ["ntk", ("nngp", "ntk")])
def test_batch_equals_unbatched(arch, shape, get):
    kfn = arch[2]
    x1, x2 = _x(shape), _x((4,) + shape[1:], 1)
    for second in (None, x2, x1):
        ref = kfn(x1, None if second is x1 else second, get)   # x2 = x1 means the x2=None kernel
        out = nt.batch(kfn, batch_size=4, device_count=0)(x1, second, get)
        for r, o in zip(jax.tree_util.tree_leaves(ref), jax.tree_util.tree_leaves(out)):
            np.testing.assert_allclose(o, r, rtol=1e-13, atol=1e-14)


def test_batched_layer_composed_with_kernel_input():
    first = stax.serial(stax.Dense(64), stax.Relu())[2]
    rest = stax.serial(stax.Dense(64), stax.Relu(), stax.Dense(1))[2]
    full = stax.serial(stax.Dense(64), stax.Relu(), stax.Dense(64), stax.Relu(), stax.Dense(1))[2]
    x = _x((12, 3))
    for x2 in (None, _x((8, 3), 1)):
        ref = full(x, x2)
        out = nt.batch(rest, batch_size=4, device_count=0)(first(x, x2))
        np.testing.assert_allclose(out.ntk, ref.ntk, rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(out.nngp, ref.nngp, rtol=1e-13, atol=1e-14)
        out2 = rest(nt.batch(first, batch_size=4, device_count=0)(x, x2))
        np.testing.assert_allclose(out2.ntk, ref.ntk, rtol=1e-13, atol=1e-14)


def _independent_prediction(kfn, x, y, xt, t):
    """Lee et al. (2019) mean and covariance, summed-loss time, from eigendecompositions."""
    th = np.asarray(kfn(x, None, "ntk"))
    k = np.asarray(kfn(x, None, "nngp"))
    th_t = np.asarray(kfn(xt, x, "ntk"))
    k_t = np.asarray(kfn(xt, x, "nngp"))
    k_tt = np.asarray(kfn(xt, None, "nngp"))
    w, v = np.linalg.eigh(th)
    a = th_t @ v @ np.diag((1 - np.exp(-w * t)) / w) @ v.T      # Theta(x,X) Theta^-1 (I - e^-Theta t)
    mean = a @ np.asarray(y)
    cov = k_tt + a @ k @ a.T - (a @ k_t.T + k_t @ a.T)
    return mean, cov


def test_gradient_descent_mse_ensemble_mean_and_cov_match_independent_formula():
    kfn = MLP[2]
    x, xt = _x((10, 3)), _x((4, 3), 1)
    y = jnp.sin(x[:, :1])
    pf = nt.predict.gradient_descent_mse_ensemble(kfn, x, y)
    for t in (0.3, 2.0, 30.0):
        mean, cov = pf(t * y.size, xt, "ntk", compute_cov=True)   # nt time = t * y.size
        m_ref, c_ref = _independent_prediction(kfn, x, y, xt, t)
        np.testing.assert_allclose(mean, m_ref, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(cov, c_ref, rtol=1e-8, atol=1e-10)


def test_gradient_descent_mse_ensemble_under_jit_does_not_leak():
    kfn = MLP[2]
    x, xt = _x((10, 3)), _x((4, 3), 1)
    y = jnp.cos(x[:, 1:2])
    pf = nt.predict.gradient_descent_mse_ensemble(kfn, x, y, diag_reg=1e-4)
    jitted = jax.jit(lambda t: pf(t, xt, "ntk", compute_cov=True))
    m1, c1 = jitted(5.0)
    m2, c2 = pf(5.0, xt, "ntk", compute_cov=True)     # eager call after the traced one
    m3, c3 = jitted(7.0)
    # jit and eager differ by XLA's rounding on the kernel diagonal (~1e-8, see
    # _compat item 5), amplified by the solve; a stale tracer would not run at all.
    np.testing.assert_allclose(m1, m2, rtol=1e-6)
    np.testing.assert_allclose(c1, c2, rtol=1e-6, atol=1e-8)
    assert not np.allclose(m1, m3)
    vm = jax.vmap(lambda t: pf(t, xt, "ntk", compute_cov=True).mean)(jnp.array([5.0, 7.0]))
    np.testing.assert_allclose(vm[0], m2, rtol=1e-6)


def test_max_learning_rate_on_cpu():
    x = _x((10, 3))
    ntk = MLP[2](x, None, "ntk")
    lr = nt.predict.max_learning_rate(ntk, y_train_size=10)
    assert lr == pytest.approx(2 * 10 / np.linalg.eigvalsh(np.asarray(ntk))[-1], rel=1e-10)


# the CNN case (15 s) repeats the MLP's check on another architecture: run with -m slow
@pytest.mark.parametrize("arch,shape", [(MLP, (6, 3)), pytest.param(CNN, (4, 5, 5, 2), marks=pytest.mark.slow)])
def test_empirical_ntk_implementations_agree(arch, shape):
    init_fn, apply_fn, _ = arch
    x1, x2 = _x(shape), _x(shape, 1)
    _, params = init_fn(jax.random.PRNGKey(2), shape)
    impls = [nt.NtkImplementation.JACOBIAN_CONTRACTION, nt.NtkImplementation.NTK_VECTOR_PRODUCTS,
             nt.NtkImplementation.STRUCTURED_DERIVATIVES]
    vals = []
    for impl in impls:
        fn = nt.empirical_ntk_fn(apply_fn, trace_axes=(-1,), implementation=impl)
        vals.append(fn(x1, x2, params))
        vals.append(jax.jit(fn)(x1, x2, params))
    for v in vals[1:]:
        np.testing.assert_allclose(v, vals[0], rtol=1e-10, atol=1e-12)
    # by hand: J(x1) J(x2)^T summed over parameters, traced over outputs
    j1 = jax.jacobian(lambda p: apply_fn(p, x1))(params)
    j2 = jax.jacobian(lambda p: apply_fn(p, x2))(params)
    manual = sum(jnp.einsum("ik...,jk...->ij", a.reshape(a.shape[:2] + (-1,)), b.reshape(b.shape[:2] + (-1,)))
                 for a, b in zip(jax.tree_util.tree_leaves(j1), jax.tree_util.tree_leaves(j2)))
    np.testing.assert_allclose(vals[0], manual / apply_fn(params, x1).shape[-1], rtol=1e-10, atol=1e-12)


# -- fixes found by running neural-tangents' own tests (tests/scripts/nt_suite.py) --------

def test_gradient_descent_mse_of_a_traced_kernel_under_vmap():
    """neural-tangents' testNTKMeanCovPrediction: members built and trained under vmap, each
    with its own empirical NTK (a tracer) passed to gradient_descent_mse (_compat item 7).
    Equal to the same members one by one, and to the closed form of linearised GD."""
    init_fn, apply_fn, _ = stax.serial(stax.Dense(32, 1.5, 0.1), stax.Relu(), stax.Dense(1, 1.5, 0.1))
    x, xt = _x((6, 3)), _x((3, 3), 1)
    y = jnp.sin(x[:, :1])
    ntk = nt.empirical_ntk_fn(apply_fn, trace_axes=(-1,))
    t = 2.0

    def member(key):
        _, params = init_fn(key, x.shape)
        k_dd, k_td = ntk(x, None, params), ntk(xt, x, params)
        fn = nt.predict.gradient_descent_mse(k_dd, y)
        return fn(t, apply_fn(params, x), apply_fn(params, xt), k_td)[1]

    keys = jax.random.split(jax.random.PRNGKey(3), 4)
    batched = jax.vmap(member)(keys)
    looped = jnp.stack([member(k) for k in keys])
    np.testing.assert_allclose(batched, looped, rtol=1e-8, atol=1e-10)
    # closed form for the first member: f_t = f_0 + K_td K_dd^-1 (I - e^{-K_dd s}) (y - f_0(X)),
    # s = t / y.size (neural-tangents' time is that of the mean squared error)
    _, params = init_fn(keys[0], x.shape)
    k_dd, k_td = np.asarray(ntk(x, None, params)), np.asarray(ntk(xt, x, params))
    ev, u = np.linalg.eigh(k_dd)
    g = u @ np.diag(-np.expm1(-ev * t / y.size) / ev) @ u.T
    ref = np.asarray(apply_fn(params, xt)) + k_td @ g @ (np.asarray(y) - np.asarray(apply_fn(params, x)))
    np.testing.assert_allclose(batched[0], ref, rtol=1e-6, atol=1e-8)


def test_empirical_ntk_auto_and_vmap_axes_agree_with_jacobian_contraction():
    """neural-tangents' test_vmap_axes: implementation AUTO reads the compiled cost analysis
    (_compat item 8); with vmap_axes and a per-input keyword argument it equals the plain
    Jacobian contraction."""
    init_fn, apply_fn, _ = stax.serial(stax.Dense(8), stax.Relu(), stax.Aggregate(), stax.GlobalAvgPool(),
                                       stax.Dense(2))
    x1, x2 = _x((3, 5, 4)), _x((2, 5, 4), 1)
    p1 = jax.random.normal(jax.random.PRNGKey(4), (3, 5, 5))
    p2 = jax.random.normal(jax.random.PRNGKey(5), (2, 5, 5))
    _, params = init_fn(jax.random.PRNGKey(2), x1.shape)
    ref = nt.empirical_ntk_fn(apply_fn, implementation=nt.NtkImplementation.JACOBIAN_CONTRACTION)(
        x1, x2, params, pattern=(p1, p2))
    auto = nt.empirical_ntk_fn(apply_fn, implementation=nt.NtkImplementation.AUTO)(x1, x2, params, pattern=(p1, p2))
    vm = nt.empirical_ntk_fn(apply_fn, implementation=nt.NtkImplementation.AUTO,
                             vmap_axes=(0, 0, dict(pattern=0)))(x1, x2, params, pattern=(p1, p2))
    np.testing.assert_allclose(auto, ref, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(vm, ref, rtol=1e-9, atol=1e-11)


def test_batch_with_per_input_keyword_arguments():
    """neural-tangents' test_kwargs (analytic, batched): nt.batch with a per-input keyword
    argument (Aggregate's pattern) equals the unbatched kernel, diagonal blocks included
    (_compat item 5 slices the keyword arguments of the blocks it recomputes)."""
    _, _, kfn = stax.serial(stax.Dense(16, 2 ** 0.5), stax.Relu(), stax.Aggregate(), stax.GlobalAvgPool(),
                            stax.Dense(16))
    x = _x((6, 5, 4))
    pat = jax.random.normal(jax.random.PRNGKey(6), (6, 5, 5))
    ref = kfn(x, None, ("nngp", "ntk"), pattern=(pat, pat))
    got = nt.batch(kfn, batch_size=2)(x, None, ("nngp", "ntk"), pattern=(pat, pat))
    for g in ("nngp", "ntk"):
        np.testing.assert_allclose(getattr(got, g), getattr(ref, g), rtol=1e-10, atol=1e-12)


def test_nt_suite_reports_reference_tests_that_do_not_pass(tmp_path):
    """tests/scripts/nt_suite.py reads pytest's junit report and counts, per file, the
    reference list's tests that pass, fail or were not run, and passes beyond the list."""
    import importlib.util
    from pathlib import Path
    spec = importlib.util.spec_from_file_location("nt_suite", Path(__file__).parent / "scripts" / "nt_suite.py")
    suite = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(suite)
    xml = tmp_path / "j.xml"
    xml.write_text("""<testsuites><testsuite>
      <testcase classname="tests.predict_test.PredictTest" name="testA"/>
      <testcase classname="tests.predict_test.PredictTest" name="testB"><failure message="x"/></testcase>
      <testcase classname="tests.stax.stax_test.StaxTest" name="testC"><skipped/></testcase>
      <testcase classname="tests.stax.stax_test.StaxTest" name="testD"/>
    </testsuite></testsuites>""")
    got = suite.outcomes(xml)
    assert got == {"tests/predict_test.py::PredictTest::testA": "passed",
                   "tests/predict_test.py::PredictTest::testB": "failed",
                   "tests/stax/stax_test.py::StaxTest::testC": "skipped",
                   "tests/stax/stax_test.py::StaxTest::testD": "passed"}
    ref = {"tests/predict_test.py::PredictTest::testA", "tests/predict_test.py::PredictTest::testB",
           "tests/batching_test.py::BatchTest::testE"}
    rows, bad = suite.compare(got, ref)
    assert bad == ["tests/predict_test.py::PredictTest::testB", "tests/batching_test.py::BatchTest::testE"]
    by_file = {r[0]: r[1:] for r in rows}
    assert by_file["tests/predict_test.py"] == (2, 1, 1, 0, 0)
    assert by_file["tests/batching_test.py"] == (1, 0, 0, 1, 0)
    assert by_file["tests/stax/stax_test.py"] == (0, 0, 0, 0, 1)
    ids = suite.read_reference()                 # the committed list: ids of the four files
    assert ids and all(i.split("::")[0] in suite.FILES for i in ids)


def test_batched_kernel_of_inputs_sharing_their_first_batch_is_not_x1_is_x2():
    """neural-tangents' testAnalyticKernelCompose*: nt.batch took ``x1_is_x2`` from its first
    block, True when x2 equals x1's first batch (as same-key draws of different lengths are
    under JAX's partitionable threefry); it is the inputs' (_compat item 7)."""
    _, _, kfn = stax.serial(stax.Dense(16), stax.Relu())
    x = _x((8, 2))
    x2 = x[:2]
    got = nt.batch(kfn, batch_size=2)(x, x2)
    ref = kfn(x, x2)
    assert not bool(got.x1_is_x2) and not bool(ref.x1_is_x2)
    np.testing.assert_allclose(got.nngp, ref.nngp, rtol=1e-12)
    composed = nt.batch(kfn, batch_size=2)(nt.batch(kfn, batch_size=2)(x, x2))
    assert not bool(composed.x1_is_x2)
    assert bool(nt.batch(kfn, batch_size=2)(x, None).x1_is_x2)


def test_import_ntkequi_leaves_neural_tangents_and_jax_alone():
    """``import ntkequi`` (every core subpackage), an ArchSpec's own kernel, predictions (structured,
    covariance, steps), max_learning_rate and an empirical NTK neither import neural_tangents nor
    patch JAX; ``ntkequi.nt`` does."""
    code = textwrap.dedent("""
        import sys
        import jax
        jax.config.update("jax_enable_x64", True)
        import ntkequi as nq
        from ntkequi import _compat
        c4 = nq.groups.planar_rotations(4)
        x = nq.data.wedge_points(jax.random.PRNGKey(0), 6)
        y = nq.data.radial_target(x)
        spec = nq.ArchSpec(kind="mlp", depth=2, width=16)
        mu = nq.Predictor(spec, x, y, group=c4, compute_cov=True)
        mu(x, [1.0], compute_cov=True); mu(x, steps=[3], learning_rate=0.5 * mu.max_learning_rate())
        nq.max_learning_rate(spec, x, c4, solver="direct")
        nq.nn.empirical_ntk(spec, x, jax.random.PRNGKey(1))
        assert not any(m.startswith("neural_tangents") for m in sys.modules), "neural_tangents imported"
        assert not _compat._applied
        import ntkequi.nt
        assert "neural_tangents" in sys.modules and _compat._applied
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]


@pytest.mark.parametrize("spec,shape", [("mlp", (5, 4)), ("cnn", (3, 6, 6, 1))])
def test_own_empirical_ntk_equals_neural_tangents(spec, shape):
    """ntkequi's empirical NTK (jax.vjp/jvp) equals neural-tangents' ``empirical_ntk_fn`` with the
    output axis traced (averaged over k = 3 outputs) to 1e-12 relative."""
    from ntkequi.nn import ArchSpec, empirical_ntk
    arch = ArchSpec(kind=spec, depth=2 if spec == "mlp" else 1, width=8, out_dim=3)
    x, key = _x(shape, 1), jax.random.PRNGKey(2)
    net = arch.flax()
    ref = nt.empirical_ntk_fn(net.apply, trace_axes=(-1,), vmap_axes=0,
                              implementation=nt.NtkImplementation.NTK_VECTOR_PRODUCTS)(x, None, net.init(key, x))
    np.testing.assert_allclose(empirical_ntk(arch, x, key), ref, rtol=0, atol=1e-12 * float(jnp.abs(ref).max()))
