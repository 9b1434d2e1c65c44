"""Writes docs/tutorial.ipynb (the tutorial's source is this file) and executes it in place:

    python docs/make_tutorial.py            # about a minute on 2 CPU cores

tests/test_tutorial.py executes the committed notebook again and fails on any error.
"""
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).parent

CELLS = [
    ("md", """# ntkequi: a researcher's first hour

A deep ensemble trained on the full orbits of its training data under a group is, at infinite
width, exactly invariant (or equivariant): on every input, on or off the data, at every training
time, although no single member is. This notebook walks through the pieces on a problem small
enough for a laptop CPU (about a minute):

1. a group and its action on inputs;
2. one architecture description that yields a network and its analytic kernel;
3. the infinite ensemble's mean `mu_t` with and without orbit augmentation, and its invariance;
4. a finite ensemble trained by gradient descent and compared with the discrete-time `mu_t`;
5. orbit-consistency metrics: OSP, and the invariance error the NTK covariance predicts for an
   M-member ensemble.

Every number here is computed by the cells; nothing is loaded from disk."""),
    ("code", """import math

import jax
jax.config.update("jax_enable_x64", True)     # float64 kernels and solves
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import ntkequi as nq
from ntkequi import groups, metrics
import warnings
warnings.filterwarnings("ignore", message="IProgress not found")   # tqdm without ipywidgets"""),
    ("md", """## 1. A group and its action

`groups.rotations(4, shape)` is C4 acting on square images by exact quarter turns (pixel
permutations). A *group* (its Cayley table), its *action* on inputs and its *representation*
on outputs are separate objects: here the targets are invariant (trivial representation).
`check_group` verifies the axioms and that the action is a group action."""),
    ("code", """c4 = groups.rotations(4, shape=(8, 8))
groups.check_group(c4)
key = jax.random.PRNGKey(0)
kx, ky, kn = jax.random.split(key, 3)
x_train = jax.random.normal(kx, (12, 8, 8, 1))
y_train = jax.random.normal(ky, (12, 3))                  # 3 invariant targets per image
noise = 2.0 * jax.random.normal(kn, (6, 8, 8, 1))         # off-data inputs, twice the scale
orbit = c4.orbit(x_train[:1])[:, 0]                       # (|G|, 8, 8, 1)
fig, axes = plt.subplots(1, 4, figsize=(8, 2.2))
for g, ax in enumerate(axes):
    ax.imshow(orbit[g, ..., 0], cmap="gray")
    ax.set_title(f"g = {g}: {90 * g} degrees")
    ax.axis("off")
fig.suptitle("the C4 orbit of one training image")
plt.show()"""),
    ("md", """## 2. One description, a network and its kernel

`ArchSpec` describes the architecture once; `spec.flax()` is the Flax network (NTK
parameterisation) and `spec.kernel_fn` its analytic NNGP/NTK (ntkequi's own recursion), so the
two cannot drift apart. The MLP's kernel depends only on inner products and norms, so it is
invariant under any pixel permutation applied to both inputs: the orbit kernel has the block
structure the theorem needs (each block `Theta(X, g X)` depends only on `g^-1 h`)."""),
    ("code", """spec = nq.ArchSpec(kind="mlp", depth=2, width=512, out_dim=3)
x_orbit = c4.orbit(x_train).reshape(-1, 8, 8, 1)          # group-major: (|G| N, 8, 8, 1)
theta = np.asarray(spec.kernel_fn(x_orbit, None, "ntk"))
print("kernel invariant under simultaneous rotation:",
      float(nq.kernels.kernel_invariance_error(spec.kernel_fn, c4, x_train).max()))
plt.figure(figsize=(4, 3.5))
plt.imshow(theta, cmap="viridis")
plt.colorbar(label="NTK")
plt.title("Theta on the orbit: |G| x |G| blocks of N x N")
plt.show()"""),
    ("md", """## 3. The infinite ensemble, with and without augmentation

A `Predictor` is built once from the training set (and the group, for orbit augmentation) and
then answers the mean (and covariance) at any test inputs, gradient-flow times or numbers of
gradient-descent steps. We ask for the predictions on the C4 orbits of the noise images and
measure their relative invariance error: about 1e-15 with augmentation at every time, order
one without."""),
    ("code", """x_eval = c4.orbit(noise).reshape(-1, 8, 8, 1)              # (|G| * 6, 8, 8, 1), group-major
times = np.array([0.01, 0.1, 1.0, 10.0, 100.0])
errors = {}
for name, g in (("plain", None), ("C4 orbit", c4)):
    pred = nq.Predictor(spec, x_train, y_train, group=g)(x_eval, times)
    orbits = metrics.orbit_predictions(pred.mean, c4)       # (T, |G|, 6, 3)
    errors[name] = [metrics.equivariance_error(orbits[i], c4).relative for i in range(len(times))]
    print(f"{name:>8}:", ["%.1e" % e for e in errors[name]])
plt.figure(figsize=(4.5, 3))
for name, e in errors.items():
    plt.loglog(times, np.maximum(e, 1e-17), "o-", label=name)
plt.xlabel("training time t"); plt.ylabel("relative invariance error of mu_t")
plt.title("noise images: off the data"); plt.legend(); plt.show()"""),
    ("md", """## 4. A finite ensemble against the discrete-time prediction

Members are trained by full-batch gradient descent on the summed MSE over the orbit, with step
size `eta = 0.5 / lambda_max`. The infinite ensemble after `s` such steps has the discrete-time
mean (`(I - eta Theta)^s` where gradient flow has `exp(-Theta t)`): `Predictor(..., steps=s,
learning_rate=eta)`. `metrics.ensemble_deviation` splits the distance of the members' mean
from `mu` into sampling noise (what `M` members must show, from their own spread) and a bias,
with a bootstrap interval, and compares their spread with the NTK covariance (variance ratio 1
when they spread as predicted)."""),
    ("code", """predictor = nq.Predictor(spec, x_train, y_train, group=c4)
eta = 0.5 / predictor.lambda_max()
steps = 40
cfg = nq.TrainConfig(ensemble_size=32, steps=steps, learning_rate=eta, optimizer="gd", loss="mse",
                     augmentation="orbit", record_steps=(0, 10, steps), seed=0, dtype="float64")
result = nq.train(spec, cfg, nq.TrainingData(x_train, y_train, x_eval, c4), progress=False)
analytic = predictor(x_eval, steps=np.asarray(result.steps), learning_rate=eta, compute_cov=True)
# relative to the spread at initialisation, sqrt(k tr Sigma_0), which does not vanish off the data
scale = float(np.sqrt(3 * np.trace(analytic.cov[0])))
for i, s in enumerate(result.steps):
    dev = metrics.ensemble_deviation(result.members[i], analytic.mean[i], analytic.cov[i], scale=scale)
    lo, hi = dev.relative_bias_ci
    print(f"step {int(s):3d}: relative bias {dev.relative_bias:.3f} (90% interval {lo:.3f} .. {hi:.3f}), "
          f"variance ratio {dev.variance_ratio:.2f} ({dev.variance_ratio_ci[0]:.2f} .. {dev.variance_ratio_ci[1]:.2f})")
plt.figure(figsize=(4, 4))
plt.scatter(np.ravel(analytic.mean[-1]), np.ravel(result.mean[-1]), s=6)
lim = float(np.abs(analytic.mean[-1]).max()) * 1.1
plt.plot([-lim, lim], [-lim, lim], "k:", lw=1)
plt.xlabel("analytic mu after 40 steps"); plt.ylabel("mean of 32 members (width 512)")
plt.title("noise orbits: ensemble mean vs NTK"); plt.show()"""),
    ("md", """## 5. Orbit consistency: OSP and the predicted invariance error

OSP counts, per input, how many of its orbit points get the same predicted class as the input
itself (out of |G| = 4). With augmentation the infinite ensemble is exactly invariant, so a
finite ensemble's remaining invariance error is sampling noise, which the NTK covariance
predicts: `metrics.predicted_invariance_error` for an `M`-member mean falls as 1/M. Below, the
measured mean squared invariance error of means of `M` members (disjoint groups of the 32, with
the standard error over groups; at M = 32 a single group, so no error bar) is set beside that
prediction."""),
    ("code", """final = result.members[-1]                                 # (32, |G| * 6, 3)
osp_members = metrics.orbit_same_predictions(metrics.orbit_predictions(final[0], c4), c4)[0]
osp_mean = metrics.orbit_same_predictions(metrics.orbit_predictions(final.mean(0), c4), c4)[0]
print(f"OSP of one member {osp_members:.2f}, of the 32-member mean {osp_mean:.2f} (out of 4)")
cov_orbit = metrics.orbit_covariance(analytic.cov[-1], c4.order, noise.shape[0])
sizes = [1, 2, 4, 8, 16, 32]
groups_of = [[metrics.mean_squared_invariance_error(metrics.orbit_predictions(final[j:j + m].mean(0), c4), c4)
              for j in range(0, 32, m)] for m in sizes]
measured = [np.mean(v) for v in groups_of]
# sampling error of that mean: std over the 32 / M disjoint groups / sqrt(their number); none for M = 32
err = [np.std(v, ddof=1) / np.sqrt(len(v)) if len(v) > 1 else 0.0 for v in groups_of]
predicted = [metrics.predicted_invariance_error(cov_orbit, 3, m) for m in sizes]
plt.figure(figsize=(4.5, 3))
plt.errorbar(sizes, measured, yerr=err, fmt="o", label="measured (mean +- s.e. over disjoint groups; M = 32: one)")
plt.plot(sizes, predicted, "-", label="NTK prediction")
plt.xscale("log"); plt.yscale("log")
plt.xlabel("ensemble size M"); plt.ylabel("mean squared invariance error")
plt.title("invariance of the ensemble mean"); plt.legend(fontsize=8); plt.show()"""),
    ("md", """## Where to go next

- `ntkequi list` shows the experiments; `ntkequi run NAME --preset P [--set field=value]` runs
  one into a resumable run directory, `ntkequi figures` regenerates the figures and tables.
- The guide (`docs/guide.md`) documents every experiment, the kernels, the structured solve and
  the metrics (including the Lie derivative, `metrics.lie_derivative`, and the SO(2) bound
  after C_k augmentation, `metrics.rotation_invariance_bound`)."""),
]


def build() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell(src) if kind == "md" else nbformat.v4.new_code_cell(src)
                for kind, src in CELLS]
    return nb


def execute(nb: nbformat.NotebookNode, cwd=HERE, timeout: int = 600) -> nbformat.NotebookNode:
    """Run every cell in a fresh kernel (raises on the first cell that fails)."""
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    return nb


if __name__ == "__main__":
    out = HERE / "tutorial.ipynb"
    nbformat.write(execute(build()), out)
    print(f"wrote {out}")
