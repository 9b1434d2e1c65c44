"""Each metric on a hand-computed case."""
import math

import jax.numpy as jnp
import numpy as np
import pytest

from ntkequi import groups, metrics
C4 = groups.planar_rotations(4)
C4_VEC = groups.planar_rotations(4, "standard")


def test_osp_counts_matching_classes_identity_included():
    # input 0: classes (1, 1, 0, 1) over the orbit -> 3; input 1: (2, 2, 2, 2) -> 4
    f = jnp.zeros((4, 2, 3))
    for g, c in enumerate([1, 1, 0, 1]):
        f = f.at[g, 0, c].set(1.0)
    f = f.at[:, 1, 2].set(1.0)
    mean, std = metrics.orbit_same_predictions(f, C4)
    assert mean == 3.5 and std == 0.5


def test_invariance_error_hand_case():
    # f(x) = (1, 0); f(gx) = (1, 0), (1, 1), (1, 0), (1, 2) -> ||diff|| = 0, 1, 0, 2 -> mean 0.75
    f = jnp.array([[[1.0, 0.0]], [[1.0, 1.0]], [[1.0, 0.0]], [[1.0, 2.0]]])
    e = metrics.equivariance_error(f, C4)
    assert e.absolute == pytest.approx(0.75) and e.relative == pytest.approx(0.75)


def test_equivariance_error_uses_the_output_representation():
    v = jnp.array([[1.0, 2.0]])
    exact = jnp.stack([v @ C4_VEC.out_rep(g, 2).T for g in range(4)])
    assert metrics.equivariance_error(exact, C4_VEC).absolute < 1e-15
    assert metrics.equivariance_error(jnp.broadcast_to(v, (4, 1, 2)), C4_VEC).absolute > 1


def test_relative_std_hand_case():
    # one input, one output: values 1, 3, 1, 3 -> std 1, mean |.| 2 -> 0.5
    f = jnp.array([1.0, 3.0, 1.0, 3.0]).reshape(4, 1, 1)
    assert metrics.relative_std(f, C4) == pytest.approx(0.5)
    v = jnp.array([[0.5, -1.0]])
    exact = jnp.stack([v @ C4_VEC.out_rep(g, 2).T for g in range(4)])
    assert metrics.relative_std(exact, C4_VEC) < 1e-15


def test_symmetric_kl_hand_case():
    # p_x = (1/2, 1/2); p_gx = (e/(1+e), 1/(1+e)) for g=1, equal to p_x otherwise
    f = jnp.zeros((4, 1, 2)).at[1, 0, 0].set(1.0)
    q = np.array([math.e, 1.0]) / (1 + math.e)
    p = np.array([0.5, 0.5])
    expected = (np.sum(q * np.log(q / p)) + np.sum(p * np.log(p / q))) / 4
    assert metrics.symmetric_kl(f, C4) == pytest.approx(expected, rel=1e-12)


def test_ntk_distance_and_accuracy():
    assert metrics.ntk_distance(jnp.array([[3.0], [4.0]]), jnp.array([[0.0], [4.0]])) == pytest.approx(0.75)
    logits = jnp.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert metrics.accuracy(logits, jnp.array([1, 0, 0])) == pytest.approx(2 / 3)
    assert metrics.accuracy(logits, jnp.eye(2)[jnp.array([1, 0, 1])]) == 1.0
    with pytest.raises(ValueError, match="orbit predictions must have shape"):
        metrics.orbit_same_predictions(jnp.zeros((3, 2, 2)), C4)
