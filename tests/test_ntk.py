"""The theory holds numerically: emergent invariance/equivariance of mu_t and its covariance."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkequi import groups as G
from ntkequi import metrics
from ntkequi import kernels
from ntkequi.kernels import ntk
from ntkequi.nn import ArchSpec

TIMES = (1e-4, 1.0, math.inf)      # t = 0+, intermediate, converged

MLP = ArchSpec(kind="mlp", depth=2, b_std=0.5)
CNN = ArchSpec(kind="cnn", depth=2, width=8)
CNN_GAP = ArchSpec(kind="cnn", depth=1, readout="gap", activation="erf")
CNN_CIRC = ArchSpec(kind="cnn", depth=2, padding="CIRCULAR")

CASES = [
    ("planar C8, MLP", G.planar_rotations(8), (2,), MLP),
    ("image C4, MLP", G.rotations(4, (6, 6)), (6, 6, 1), MLP),
    ("image C4, CNN", G.rotations(4, (6, 6)), (6, 6, 1), CNN),
    ("image D4, CNN+GAP", G.dihedral(4, (5, 5)), (5, 5, 2), CNN_GAP),
    ("lattice translations, circular CNN", G.lattice_translations(4), (4, 4, 1), CNN_CIRC),
    ("lattice C4, MLP", G.lattice_rotations(5), (5, 5, 1), MLP),
    ("planar C6 vector target (equivariant)", G.planar_rotations(6, "standard"), (2,),
     ArchSpec(kind="mlp", depth=2, out_dim=2, b_std=0.5)),
]


def _problem(group, shape, arch, n=6, m=4):
    kx, kt = jax.random.split(jax.random.PRNGKey(3))
    x = jax.random.normal(kx, (n,) + shape)
    flat = x.reshape(n, -1)
    if group.out.is_trivial:
        y = jnp.concatenate([jnp.sin(flat.sum(1, keepdims=True)), jnp.cos(flat[:, :1])], 1)[:, :arch.out_dim]
    else:
        y = x * jnp.linalg.norm(x, axis=1, keepdims=True)    # an equivariant vector field
    x_off = 3.0 * jax.random.normal(kt, (m,) + shape)        # pure noise: off the data manifold
    return x, y, x_off


@pytest.mark.parametrize("name,group,shape,arch", CASES, ids=[c[0] for c in CASES])
def test_augmented_mean_is_equivariant_off_manifold_and_plain_is_not(name, group, shape, arch):
    x, y, x_off = _problem(group, shape, arch)
    x_orbit = group.orbit(x_off).reshape((-1,) + shape)
    aug = ntk.predict(arch, x, y, x_orbit, TIMES, group=group, diag_reg=1e-8, compute_cov=True)
    plain = ntk.predict(arch, x, y, x_orbit, TIMES, diag_reg=1e-8)
    for i, t in enumerate(TIMES):
        e_aug = metrics.equivariance_error(metrics.orbit_predictions(aug.mean[i], group), group)
        e_plain = metrics.equivariance_error(metrics.orbit_predictions(plain.mean[i], group), group)
        assert e_aug.relative <= 1e-6, (name, t, e_aug)
        assert e_plain.relative >= 1e-2, (name, t, e_plain)     # not vacuous
        # the covariance transforms the same way: Var f(g x) = Var f(x)
        var = jnp.diagonal(aug.cov[i]).reshape(group.order, -1)
        np.testing.assert_allclose(var, jnp.broadcast_to(var[0], var.shape), rtol=1e-6, atol=1e-12)


def test_mean_matches_closed_form_with_augmentation():
    """mu_t = Theta(x, X_aug) Theta_aug^-1 (I - exp(-Theta_aug t)) Y_aug, computed independently."""
    g = G.planar_rotations(4)
    x = jax.random.normal(jax.random.PRNGKey(0), (5, 2))
    y = jnp.sin(x[:, :1])
    xt = jax.random.normal(jax.random.PRNGKey(1), (3, 2))
    xa = np.concatenate([np.asarray(x) @ np.asarray(g.mats[k]).T for k in range(4)])
    ya = np.tile(np.asarray(y), (4, 1))
    kfn = MLP.kernel_fn
    th, th_t = np.asarray(kfn(xa, None, "ntk")), np.asarray(kfn(xt, xa, "ntk"))
    w, v = np.linalg.eigh(th)
    ts = [0.0, 0.05, 2.0, 40.0]
    pred = ntk.predict(MLP, x, y, xt, ts, group=g)
    for i, t in enumerate(ts):
        mu = th_t @ v @ np.diag(-np.expm1(-w * t) / w) @ v.T @ ya
        np.testing.assert_allclose(pred.mean[i], mu, rtol=1e-9, atol=1e-12)
    assert float(jnp.abs(pred.mean[0]).max()) == 0.0      # t = 0: the ensemble mean is 0


def test_learning_rate_scales_time():
    x = jax.random.normal(jax.random.PRNGKey(0), (6, 2))
    y = jnp.cos(x[:, 1:])
    xt = jax.random.normal(jax.random.PRNGKey(1), (3, 2))
    a = ntk.predict(MLP, x, y, xt, [3.0], learning_rate=0.5)
    b = ntk.predict(MLP, x, y, xt, [1.5])
    np.testing.assert_allclose(a.mean, b.mean, rtol=1e-12)


def test_kernel_invariance_holds_for_exact_and_is_reported_for_interpolated():
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 6, 6, 1))
    x2 = jax.random.normal(jax.random.PRNGKey(1), (3, 6, 6, 1))
    for group, arch in [(G.rotations(4, (6, 6)), CNN), (G.rotations(4, (6, 6)), MLP),
                        (G.dihedral(4, (6, 6)), CNN_GAP), (G.lattice_translations(6), CNN_CIRC)]:
        errs = ntk.kernel_invariance_error(arch.kernel_fn, group, x, x2)
        assert errs.shape == (group.order,) and errs.max() < 1e-12, (group.name, errs)
        errs_self = ntk.kernel_invariance_error(arch.kernel_fn, group, x)
        assert errs_self.max() < 1e-12, (group.name, errs_self)
    c8 = G.rotations(8, (6, 6))
    errs = ntk.kernel_invariance_error(MLP.kernel_fn, c8, x, x2)
    assert errs[[0, 2, 4, 6]].max() < 1e-12          # the 90-degree elements are exact
    assert errs[[1, 3, 5, 7]].min() > 1e-3           # interpolation breaks the symmetry, measurably


def test_batched_prediction_equals_unbatched():
    g = G.rotations(4, (6, 6))
    x, y, x_off = _problem(g, (6, 6, 1), CNN, n=6, m=4)
    a = ntk.predict(CNN, x, y, x_off, [0.5, math.inf], group=g, compute_cov=True)
    b = ntk.predict(CNN, x, y, x_off, [0.5, math.inf], group=g, compute_cov=True, batch_size=4)
    np.testing.assert_allclose(b.mean, a.mean, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(b.cov, a.cov, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("bad,match", [
    (dict(t=-1.0), r"t must be >= 0; got \[-1.0\]"),
    (dict(t=float("nan")), "NaN"),
    (dict(x_train=jnp.full((6, 2), jnp.nan)), "x_train contains 12 non-finite"),
    (dict(y_train=jnp.ones((6,))), r"y_train must have shape \(N, k\)"),
    (dict(y_train=jnp.ones((5, 1))), "x_train has 6 samples but y_train has 5"),
    (dict(x_test=jnp.ones((3, 3))), r"x_test per-sample shape \(3,\)"),
    (dict(x_train=jnp.ones((6,)), ), "rank >= 2"),
    (dict(diag_reg=-1.0), "diag_reg"),
    (dict(learning_rate=0.0), "learning_rate"),
])
def test_bad_input_gets_a_clear_error(bad, match):
    args = dict(x_train=jax.random.normal(jax.random.PRNGKey(0), (6, 2)), y_train=jnp.ones((6, 1)),
                x_test=jnp.ones((3, 2)), t=1.0)
    kwargs = {k: bad.pop(k) for k in ("diag_reg", "learning_rate") if k in bad}
    args.update(bad)
    with pytest.raises(ValueError, match=match):
        ntk.predict(MLP, args["x_train"], args["y_train"], args["x_test"], args["t"], **kwargs)


def test_group_that_does_not_match_the_inputs():
    with pytest.raises(G.GroupError, match=r"\(N, 6, 6, \*\)"):
        ntk.predict(MLP, jnp.ones((4, 2)), jnp.ones((4, 1)), jnp.ones((2, 2)), 1.0,
                    group=G.rotations(4, (6, 6)))


def test_kernel_too_large_is_refused_with_sizes_and_advice():
    x = jnp.ones((40, 2))
    with pytest.raises(kernels.KernelTooLargeError, match=r"40 training x 3 test.*batch_size"):
        ntk.predict(MLP, x, jnp.ones((40, 1)), jnp.ones((3, 2)), 1.0, max_bytes=60_000)
    with pytest.raises(kernels.KernelTooLargeError, match=r"320x320 train kernel.*smaller group"):
        ntk.predict(MLP, x, jnp.ones((40, 1)), jnp.ones((3, 2)), 1.0,
                    group=G.planar_rotations(8), max_bytes=100_000, solver="direct")
    # the default ('auto') solve is the structured one for an exact group: its own estimate
    with pytest.raises(kernels.KernelTooLargeError, match=r"structured C8\(plane\) prediction for 40 training"):
        ntk.predict(MLP, x, jnp.ones((40, 1)), jnp.ones((3, 2)), 1.0,
                    group=G.planar_rotations(8), max_bytes=100_000)


def test_time_convention_matches_a_trained_wide_network():
    """Full-batch GD on the summed loss, lr x steps = t, agrees with the NTK
    prediction at the same t (linearised around the network's own initial outputs)."""
    arch = ArchSpec(kind="mlp", depth=1, width=8192, b_std=0.5)
    init_fn, apply_fn, _ = arch.stax()
    x = jax.random.normal(jax.random.PRNGKey(0), (8, 2))
    y = jnp.sin(2 * x[:, :1])
    xt = 2.0 * jax.random.normal(jax.random.PRNGKey(1), (4, 2))
    _, params = init_fn(jax.random.PRNGKey(2), x.shape)
    lr, steps = 0.05, 200
    loss = lambda p: 0.5 * jnp.sum((apply_fn(p, x) - y) ** 2)

    @jax.jit
    def step(p, _):
        return jax.tree_util.tree_map(lambda a, g: a - lr * g, p, jax.grad(loss)(p)), None

    trained, _ = jax.lax.scan(step, params, None, length=steps)
    f0_train, f0_test = apply_fn(params, x), apply_fn(params, xt)
    change = apply_fn(trained, xt) - f0_test
    pred = ntk.predict(arch, x, y - f0_train, xt, lr * steps).mean[0]
    rel = float(jnp.linalg.norm(change - pred) / jnp.linalg.norm(pred))
    assert rel < 0.1, rel
    wrong_time = ntk.predict(arch, x, y - f0_train, xt, lr * steps / x.shape[0]).mean[0]
    assert float(jnp.linalg.norm(change - wrong_time) / jnp.linalg.norm(pred)) > 3 * rel
