"""The C4 group-convolutional network's NNGP/NTK in ntkequi's own recursion (LiftingConv,
GroupConv, pooling and readouts of regular feature maps; tests/test_layers.py compares it with
the neural-tangents layers of kernels.group_stax and with the finite network's empirical NTK):
invariance under quarter turns, agreement with a Monte Carlo estimate where the reference
disagrees, and bad descriptions refused."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkequi import groups
from ntkequi.kernels.recursions import recursion_kernel_fn
from ntkequi.nn import ArchSpec
from ntkequi.nn.layers import AvgPool2, Conv, Dense, FlaxNet, GlobalAvgPool, GroupConv, LiftingConv


def _images(n, size, c=1, seed=0):
    return np.random.default_rng(seed).normal(size=(n, size, size, c))


def test_invariant_gcnn_kernel_and_network_under_quarter_turns():
    """A GCNN with invariant pooling: its NNGP and NTK are unchanged when either input is turned
    by a quarter turn (to 1e-12 relative), and so is the finite network's output; the
    flatten-readout GCNN's kernel is not invariant (a control)."""
    spec = ArchSpec(kind="gcnn", depth=2, width=4, pool=True, readout="gap", out_dim=2, b_std=0.1)
    c4 = groups.rotations(4, (4, 4))           # pooled 4 -> 2 -> 1: every pooled map even, so exact
    x, y = _images(2, 4, 2), _images(1, 4, 2, seed=1)
    kfn = spec.kernel_fn
    ref = kfn(x, y)
    scale = float(np.abs(ref.ntk).max())
    for g in range(1, 4):
        gx = np.asarray(c4.act(g, jnp.asarray(x)))
        turned = kfn(gx, y)
        for name in ("nngp", "ntk"):
            assert np.abs(np.asarray(getattr(turned, name)) - np.asarray(getattr(ref, name))).max() < 1e-12 * scale
    net = spec.flax()
    params = net.init(jax.random.PRNGKey(0), x)
    out = net.apply(params, x)
    for g in range(1, 4):
        np.testing.assert_allclose(net.apply(params, c4.act(g, jnp.asarray(x))), out, atol=1e-12)
    flat = ArchSpec(kind="gcnn", depth=2, width=4, pool=True, readout="flatten", b_std=0.1).kernel_fn
    a, b = flat(x, y, "ntk"), flat(np.asarray(c4.act(1, jnp.asarray(x))), y, "ntk")
    assert np.abs(np.asarray(a) - np.asarray(b)).max() > 1e-3 * np.abs(np.asarray(a)).max()


def test_gcnn_nngp_matches_monte_carlo_where_the_reference_differs():
    """A conv, a lifting convolution, a 2x2 pool of odd (9x9) maps and invariant pooling,
    without activations: a linear network, whose output covariance over the random parameters
    is its NNGP at any width. neural-tangents' layers (kernels.group_stax) are about 11 % off here
    (tests/scripts/gcnn_reference_gap.py; they agree where the maps are even); the recursion
    agrees with 40,000 networks within 4 standard errors."""
    layers = (Conv(2, 3, "SAME", 1.2, 0.1), LiftingConv(2, 3, 1.4, 0.1), AvgPool2(), GlobalAvgPool(),
              Dense(1, 1.0, 0.1))
    x = _images(2, 9, 2)
    k = np.asarray(recursion_kernel_fn(layers)(x, None, "nngp"))
    net = FlaxNet(layers)
    draw = jax.jit(jax.vmap(lambda key: net.apply(net.init(key, x), x)[:, 0]))
    f = np.concatenate([np.asarray(draw(jax.random.split(jax.random.PRNGKey(s), 5000))) for s in range(8)])
    prods = f[:, :, None] * f[:, None, :]                      # (draws, 2, 2)
    mc, se = prods.mean(0), prods.std(0) / np.sqrt(f.shape[0])
    assert np.all(np.abs(k - mc) < 4 * se), (k, mc, se)


def test_bad_gcnn_descriptions_are_refused_with_the_value():
    with pytest.raises(ValueError, match="odd.*got 4"):
        LiftingConv(8, 4, 1.0, 0.0)
    with pytest.raises(ValueError, match="odd.*got 2"):
        ArchSpec(kind="gcnn", kernel_size=2)
    with pytest.raises(ValueError, match="'SAME'.*'CIRCULAR'"):
        ArchSpec(kind="gcnn", padding="CIRCULAR")
    lift = LiftingConv(None, 3, 1.0, 0.0)
    with pytest.raises(ValueError, match="square pixel grids only.*6x8.*C8/C16"):
        recursion_kernel_fn((lift, GlobalAvgPool(), Dense(1, 1.0, 0.0)))(np.zeros((2, 6, 8, 1)), None, "ntk")
    with pytest.raises(ValueError, match="LiftingConv first"):
        recursion_kernel_fn((GroupConv(None, 3, 1.0, 0.0), GlobalAvgPool(), Dense(1, 1.0, 0.0)))(
            np.zeros((2, 6, 6, 1)), None, "ntk")
    with pytest.raises(ValueError, match="use GroupConv"):
        recursion_kernel_fn((lift, Conv(None, 3, "SAME", 1.0, 0.0), GlobalAvgPool(), Dense(1, 1.0, 0.0)))(
            np.zeros((2, 6, 6, 1)), None, "ntk")


def test_memory_declared_per_pair_counts_the_rotation_blocks():
    """The pair pass holds 4 rotation blocks per pair of regular feature maps; the per-input
    pass one (block 0 holds the variances)."""
    kfn = ArchSpec(kind="gcnn", depth=1, readout="gap").kernel_fn
    cnn = ArchSpec(kind="cnn", depth=1, readout="gap").kernel_fn
    assert kfn.floats_per_pair((7, 7, 1)) == 4 * cnn.floats_per_pair((7, 7, 1)) == 4 * 49 ** 2
    assert kfn.plan((7, 7, 1)).floats_per_input == 49 * 5 ** 2       # block 0, the band of the lifting's taps


def test_invariant_gcnn_kernel_is_the_augmented_cnn_kernel_and_its_mean_the_augmented_mean():
    """The correspondence, at infinite width: a GCNN (lifting conv, group convs, pointwise
    activations, 2x2 pools, invariant pooling) has the one-sided C4-symmetrized kernel of the CNN
    with the same layers (plain convs, global average pooling), to float64 rounding, when every
    pooled map is even; so its mean prediction after time |G| t on the training set equals the
    CNN's trained on the full orbit for time t (every t, t = inf included), on and off the data.
    With an odd map pooled (5 -> 2) the pool's dropped row breaks the rotation and the kernels
    differ by > 1 %."""
    from ntkequi.kernels import Predictor
    c4 = groups.rotations(4, (4, 4))                      # pooled 4 -> 2 -> 1
    gcnn = ArchSpec(kind="gcnn", depth=2, width=1, pool=True, readout="gap", b_std=0.1)
    cnn = ArchSpec(kind="cnn", depth=2, width=1, pool=True, readout="gap", b_std=0.1)
    x, y = _images(5, 4, 1), _images(3, 4, 1, seed=1)
    kg = np.asarray(gcnn.kernel_fn(x, y, "ntk"))
    sym = sum(np.asarray(cnn.kernel_fn(x, np.asarray(c4.act(m, jnp.asarray(y))), "ntk")) for m in range(4)) / 4
    assert np.abs(kg - sym).max() < 1e-12 * np.abs(kg).max()
    targets = np.random.default_rng(2).normal(size=(5, 1))
    x_test = np.concatenate([y, _images(2, 4, 1, seed=3) * 3.0])          # test inputs and larger noise
    t = np.array([0.5, 4.0, np.inf])
    aug = Predictor(cnn, x, targets, group=c4)(x_test, t).mean
    ours = Predictor(gcnn, x, targets)(x_test, t * c4.order).mean
    assert np.abs(np.asarray(ours) - np.asarray(aug)).max() < 1e-10 * np.abs(np.asarray(aug)).max()
    c4o = groups.rotations(4, (5, 5))
    xo, yo = _images(2, 5, 1), _images(1, 5, 1, seed=1)
    one = lambda kind: ArchSpec(kind=kind, depth=1, pool=True, readout="gap", b_std=0.1).kernel_fn   # noqa: E731
    ko = np.asarray(one("gcnn")(xo, yo, "ntk"))
    so = sum(np.asarray(one("cnn")(xo, np.asarray(c4o.act(m, jnp.asarray(yo))), "ntk")) for m in range(4)) / 4
    assert np.abs(ko - so).max() > 1e-2 * np.abs(ko).max()


def test_flatten_readout_gcnn_kernel_is_the_plain_cnns_in_the_band():
    """With a flatten readout only rotation block 0 is read, and block 0 of a lifting or group
    convolution is the plain convolution's step: the GCNN's kernel (band representation, 9x9)
    equals the CNN's of the same layers to 1e-12 (x2 given and the symmetric call)."""
    gcnn = ArchSpec(kind="gcnn", depth=2, width=1, b_std=0.1, activation="erf")
    cnn = ArchSpec(kind="cnn", depth=2, width=1, b_std=0.1, activation="erf")
    assert gcnn.kernel_fn.plan((9, 9, 1)).rep == "band"
    x, y = _images(3, 9, 1), _images(2, 9, 1, seed=1)
    for b in (None, y):
        a, c = np.asarray(gcnn.kernel_fn(x, b, "ntk")), np.asarray(cnn.kernel_fn(x, b, "ntk"))
        assert np.abs(a - c).max() < 1e-12 * np.abs(c).max()
