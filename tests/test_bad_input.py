"""Bad input at the public entry points: a clear error of the stated type whose message
names the offending argument or value, never a traceback from inside JAX or a
ZeroDivisionError (one table over the API; each row is one thing a user can get wrong)."""
import numpy as np
import pytest

from ntkequi import cli, data, ensembles, experiments, groups, metrics, runs
from ntkequi.kernels import KernelTooLargeError, max_learning_rate, predict, symmetrize
from ntkequi.nn import ArchSpec

MLP = ArchSpec(kind="mlp", depth=1)
CNN = ArchSpec(kind="cnn", depth=1, width=4)
C4 = groups.planar_rotations(4)
X, Y = np.ones((3, 2)), np.ones((3, 1))
TRAIN = dict(ensemble_size=2, steps=2, learning_rate=0.1, record_steps=(2,))


def _train(x, y, **cfg):
    return ensembles.train(MLP, ensembles.TrainConfig(**{**TRAIN, **cfg}), ensembles.TrainingData(x, y, X),
                           progress=False)


def _saved_config_with_unknown_field():
    cfg = experiments.get("demo").Config
    d = runs.to_jsonable(cfg())
    d["bogus"] = 1
    return runs.from_jsonable(cfg, d)


CASES = [
    # predict: shapes, dtypes, empty, non-finite, times, solver arguments, groups
    ("empty training set", lambda: predict(MLP, np.zeros((0, 2)), np.zeros((0, 1)), X, 1.0), ValueError, "x_train is empty"),
    ("empty test set", lambda: predict(MLP, X, Y, np.zeros((0, 2)), 1.0), ValueError, "x_test is empty"),
    ("strings", lambda: predict(MLP, np.array([["a", "b"]]), Y[:1], X, 1.0), ValueError, "x_train must be a real numeric"),
    ("objects", lambda: predict(MLP, X, np.array([[None]] * 3, dtype=object), X, 1.0), ValueError, "y_train must be a real numeric"),
    ("complex", lambda: predict(MLP, X + 1j, Y, X, 1.0), ValueError, "x_train must be a real numeric.*complex"),
    ("NaN input", lambda: predict(MLP, X, Y, np.full((2, 2), np.nan), 1.0), ValueError, "x_test contains 4 non-finite"),
    ("inf target", lambda: predict(MLP, X, np.full((3, 1), np.inf), X, 1.0), ValueError, "y_train contains 3 non-finite"),
    ("rank-1 inputs", lambda: predict(MLP, np.ones(3), Y, X, 1.0), ValueError, "x_train must be a batch"),
    ("targets not (N, k)", lambda: predict(MLP, X, np.ones(3), X, 1.0), ValueError, r"y_train must have shape \(N, k\)"),
    ("N mismatch", lambda: predict(MLP, X, np.ones((4, 1)), X, 1.0), ValueError, "x_train has 3 samples but y_train has 4"),
    ("test shape", lambda: predict(MLP, X, Y, np.ones((2, 3)), 1.0), ValueError, "x_test per-sample shape"),
    ("negative time", lambda: predict(MLP, X, Y, X, [1.0, -2.0]), ValueError, r"t must be >= 0; got \[-2.0\]"),
    ("NaN time", lambda: predict(MLP, X, Y, X, float("nan")), ValueError, "t contains NaN"),
    ("text time", lambda: predict(MLP, X, Y, X, "soon"), ValueError, "t must be a time.*'soon'"),
    ("no times", lambda: predict(MLP, X, Y, X, []), ValueError, "t is empty"),
    ("zero learning rate", lambda: predict(MLP, X, Y, X, 1.0, learning_rate=0.0), ValueError, "learning_rate must be"),
    ("text learning rate", lambda: predict(MLP, X, Y, X, 1.0, learning_rate="fast"), ValueError, "learning_rate must be a number"),
    ("negative diag_reg", lambda: predict(MLP, X, Y, X, 1.0, diag_reg=-1.0), ValueError, "diag_reg must be >= 0"),
    ("negative batch_size", lambda: predict(MLP, X, Y, X, 1.0, batch_size=-3), ValueError, "batch_size must be an integer >= 0"),
    ("unknown get", lambda: predict(MLP, X, Y, X, 1.0, get="gp"), ValueError, "get must be 'ntk' or 'nngp'; got 'gp'"),
    ("unknown solver", lambda: predict(MLP, X, Y, X, 1.0, solver="magic"), ValueError, "solver must be.*'magic'"),
    ("structured without group", lambda: predict(MLP, X, Y, X, 1.0, solver="structured"), ValueError, "needs a group"),
    ("group not a group", lambda: predict(MLP, X, Y, X, 1.0, group="C4"), TypeError, "group must be an ntkequi group.*got 'C4'"),
    ("group for other inputs", lambda: predict(MLP, np.ones((3, 3)), Y, np.ones((1, 3)), 1.0, group=C4),
     groups.GroupError, r"per-sample shape \(2,\); got \(3,\)"),
    ("image group on points", lambda: predict(MLP, X, Y, X, 1.0, group=groups.rotations(4, (8, 8))),
     groups.GroupError, r"shape \(N, 8, 8, \*\)"),
    ("kernel too large", lambda: predict(CNN, np.ones((4, 8, 8, 1)), np.ones((4, 1)), np.ones((4, 8, 8, 1)), 1.0, max_bytes=1000),
     KernelTooLargeError, "needs about"),
    # max_learning_rate, symmetrize
    ("max_learning_rate empty", lambda: max_learning_rate(MLP, np.zeros((0, 2))), ValueError, "x_train is empty"),
    ("max_learning_rate NaN", lambda: max_learning_rate(MLP, np.full((2, 2), np.nan)), ValueError, "x_train contains"),
    ("symmetrize non-group", lambda: symmetrize(MLP.kernel_fn, "C4"), TypeError, "group must be an ntkequi group"),
    # ensembles
    ("train on nothing", lambda: _train(np.zeros((0, 2)), np.zeros((0, 1))), ValueError, "x_train is empty"),
    ("train on text", lambda: _train(np.array([["a", "b"]]), Y[:1]), ValueError, "x_train must be a real numeric"),
    ("train targets k", lambda: _train(X, np.ones((3, 2))), ValueError, "targets have k=2 components but spec.out_dim=1"),
    ("no members", lambda: ensembles.TrainConfig(**{**TRAIN, "ensemble_size": 0}), ValueError, "ensemble_size >= 1.*got 0"),
    ("NaN learning rate", lambda: ensembles.TrainConfig(**{**TRAIN, "learning_rate": float("nan")}), ValueError, "learning_rate > 0.*nan"),
    ("record after the end", lambda: ensembles.TrainConfig(**{**TRAIN, "record_steps": (5,)}), ValueError, r"record_steps.*\(5,\)"),
    ("augmentation without group", lambda: _train(X, Y, augmentation="orbit"), ValueError, "augmentation='orbit' needs a group"),
    # architectures, groups, metrics
    ("unknown architecture", lambda: ArchSpec(kind="transformer"), ValueError, "ArchSpec.kind.*'transformer'"),
    ("unknown activation", lambda: ArchSpec(kind="mlp", activation="swish"), ValueError, "activation.*'swish'"),
    ("zero width", lambda: ArchSpec(kind="mlp", width=0), ValueError, "width"),
    ("C_0", lambda: groups.rotations(0, (8, 8)), groups.GroupError, "n >= 1; got n=0"),
    ("not a group table", lambda: groups.FiniteGroup("bad", [[0, 1], [1, 1]]), groups.GroupError, "bad: inverses fail"),
    ("not square table", lambda: groups.FiniteGroup("bad", [[0, 1, 2], [1, 2, 0]]), groups.GroupError, "bad: Cayley table must be square"),
    ("orbit predictions for another group", lambda: metrics.equivariance_error(np.ones((3, 5, 1)), C4),
     ValueError, r"\(\|G\|=4, N, k\); got \(3, 5, 1\)"),
    # data
    ("unknown OOD set", lambda: data.ood_set("cifar", 3), ValueError, "unknown out-of-distribution set 'cifar'"),
    ("negative count", lambda: data.ood_set("noise", -3), ValueError, "n .*got -3"),
    ("more images than the dataset", lambda: data.splits(data.SplitConfig(n_train=70000, n_val=0, n_test=5)),
     ValueError, "n_train=70000"),
    ("missing data directory", lambda: data.load("fashion_mnist", "train", "/nonexistent/dir"), data.DataError,
     "/nonexistent/dir does not exist"),
    # configs and the command line
    ("unknown config field", _saved_config_with_unknown_field, ValueError, r"fields \['bogus'\]"),
    ("unknown experiment", lambda: experiments.run_experiment("nope"), KeyError, "unknown experiment 'nope'"),
    ("unknown preset", lambda: experiments.run_experiment("demo", "huge"), KeyError, "has no preset 'huge'"),
]


@pytest.mark.parametrize("call,exc,match", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_a_clear_error_naming_it(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize("argv,message", [
    (["run", "demo", "--bogus"], "unrecognized arguments: --bogus"),
    (["run", "nope"], "invalid choice: 'nope'"),
    (["run", "demo", "--preset", "huge"], "has no preset 'huge'"),
])
def test_command_line_rejects_unknown_names_and_flags(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    assert message in capsys.readouterr().err
