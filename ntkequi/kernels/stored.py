"""Orbit kernel blocks computed tile by tile and saved as they finish, so that a long
kernel computation survives an interruption and a resumed run recomputes nothing.

:class:`TileStore` holds the blocks the structured solve needs
(:func:`~ntkequi.kernels.structured.solve_blocks`) for an invariant kernel and an exactly
acting group ``G``:

* train blocks ``B_a = k(X, a X)`` (``|G|``, ``N x N``): only one of each pair
  ``{a, a^-1}`` is computed (``B_{a^-1} = B_a^T``), only the tiles ``I <= J`` of a block
  with ``a = a^-1`` (it is symmetric), and the identity block's diagonal tiles as
  ``kernel_fn(x, None)`` (each unordered pair once, exact diagonal);
* test blocks ``k(x_test, a X)`` for every ``a``; those of the orbit points ``h x`` follow
  without any kernel call, ``k(h x, a X) = k(x, h^-1 a X)`` (:func:`orbit_test_blocks`).

Tiles are ``tile x tile`` (the last ones smaller), one ``.npz`` file each (written to a
temporary name and renamed: a killed run leaves no torn tile), computed in order of their
largest index: the blocks of the first ``n`` training inputs (nested subsets) are complete
as soon as the tiles up to ``n`` are, so that several training-set sizes share one
computation (:meth:`TileStore.train_blocks` ``(n)``).

``dtype`` sets the precision the kernel is computed and its tiles saved in (default the
inputs'); the assembled blocks are always in the inputs' dtype, so that a float32 kernel
(faster for the pooled CNN kernels on a CPU, ``benchmarks/tile_dtype.py``; relative error ~1e-7
per entry) can
be solved in float64.

Several processes can fill one store at once (on one machine, or on the nodes of a cluster
sharing its file system): :meth:`TileStore.compute` claims each tile by an exclusive ``flock``
on ``<tile>.claim`` before computing it, skips tiles others hold, and then waits for them. The
operating system releases a dead process's lock (on NFS, when the client's lease ends), so a
worker killed mid-tile leaves that tile to the others. A store records what it holds
(``store.json``: the kernel, the group, the inputs' fingerprints, the tile size and dtype) and
refuses to be opened with anything else; a tile file that cannot be read is recomputed, with a
warning naming it.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import warnings
import zipfile
from pathlib import Path
from typing import Callable, Optional, Sequence

import jax.numpy as jnp
import numpy as np

from ..groups import Group
from ._common import MemoryBudget

__all__ = ["TileStore", "orbit_test_blocks", "orbit_point_blocks", "tile_store_bytes"]


def tile_store_bytes(order: int, n_train: int, n_test: int, n_kernels: int, itemsize: int = 8) -> int:
    """Bytes of the assembled blocks a solve holds: ``|G|`` train ``N x N`` and ``|G|`` test
    ``M x N`` blocks per kernel, and the solve's complex Fourier blocks and eigenvectors
    (about four real ``|G| N x N`` more)."""
    return int(itemsize * (n_kernels * order * (n_train ** 2 + n_test * n_train) + 4 * order * n_train ** 2))


class TileStore:
    """Kernel blocks of ``x_train`` (and ``x_test``) under ``group``, computed tile by tile
    into ``path`` (see the module doc).

    Args:
        path: directory for the tiles (created).
        kernel_fn: ``kernel_fn(x1, x2, get)``, invariant under the simultaneous action.
        group: an exactly acting group.
        x_train: ``(N, ...)`` training inputs (the largest set; smaller sets are its first rows).
        x_test: ``(M, ...)`` test inputs, or None.
        gets: kernels to keep, e.g. ``('nngp', 'ntk')``.
        tile: tile side.
        max_bytes: refuse (:class:`~ntkequi.KernelTooLargeError`) before computing anything
            if the assembled blocks of all of ``x_train`` would exceed it (default
            :func:`~ntkequi.kernels.memory_budget_bytes`).
        dtype: 'float32' or 'float64', the precision the kernel is computed and saved in
            (default: the inputs' dtype); assembled blocks are in the inputs' dtype.
    """

    def __init__(self, path, kernel_fn: Callable, group: Group, x_train, x_test=None,
                 gets: Sequence[str] = ("nngp", "ntk"), tile: int = 256, max_bytes: Optional[int] = None,
                 dtype=None):
        if not group.exact:
            raise ValueError(f"{group.name} acts inexactly: the orbit kernel has no block structure "
                             f"to store; use ntkequi.kernels.predict(..., solver='direct')")
        if int(tile) < 1:
            raise ValueError(f"tile must be a positive number of inputs; got {tile!r}")
        if dtype is not None and np.dtype(dtype) not in (np.dtype("float32"), np.dtype("float64")):
            raise ValueError(f"dtype must be 'float32' or 'float64' (or None: the inputs'); got {dtype!r}")
        self.path = Path(path)
        self.kernel_fn, self.group, self.gets, self.tile = kernel_fn, group, tuple(gets), int(tile)
        self.x_train = jnp.asarray(x_train)
        self.x_test = None if x_test is None else jnp.asarray(x_test)
        self.dtype = self.x_train.dtype if dtype is None else np.dtype(dtype)
        if self.dtype == np.dtype("float64") and self.x_train.dtype != self.dtype:
            raise ValueError(f"dtype float64 needs float64 inputs (jax_enable_x64); got {self.x_train.dtype}")
        n, m = self.x_train.shape[0], 0 if x_test is None else self.x_test.shape[0]
        if n == 0:
            raise ValueError("x_train is empty: the kernel blocks need at least one training input")
        need = tile_store_bytes(group.order, n, m, len(self.gets), self.x_train.dtype.itemsize)
        budget = MemoryBudget(max_bytes)
        budget.require(need, f"the {group.name} kernel blocks of {n} training x {m} test inputs",
                       f"use at most about {int(math.sqrt(budget.bytes / (need / n ** 2)))} training "
                       f"inputs, or fewer test inputs")
        self.path.mkdir(parents=True, exist_ok=True)
        inv = np.asarray(group.inverses)
        self.reps = [a for a in range(group.order) if a <= inv[a]]
        self._check_identity()

    def identity(self) -> dict:
        """What the tiles are of: the kernel, the group, the kernels kept, the tile size, the
        dtype, and the shapes and SHA-256 of the inputs (saved as ``store.json``)."""
        def fingerprint(x):
            if x is None:
                return None
            a = np.ascontiguousarray(np.asarray(x))
            return {"shape": list(a.shape), "dtype": str(a.dtype), "sha256": hashlib.sha256(a.tobytes()).hexdigest()}
        layers = getattr(self.kernel_fn, "layers", None)      # ntkequi's kernels: their layers; others: the name
        kernel = repr(layers) if layers is not None else getattr(self.kernel_fn, "__qualname__",
                                                                 type(self.kernel_fn).__name__)
        return {"kernel": kernel, "group": self.group.name,
                "gets": list(self.gets), "tile": self.tile, "dtype": str(self.dtype),
                "x_train": fingerprint(self.x_train), "x_test": fingerprint(self.x_test)}

    def _check_identity(self) -> None:
        target, mine = self.path / "store.json", self.identity()
        if target.exists():
            theirs = json.loads(target.read_text())
            if theirs != mine:
                diff = sorted(k for k in set(theirs) | set(mine) if theirs.get(k) != mine.get(k))
                raise ValueError(f"tile store {self.path} holds tiles of another computation (fields {diff} "
                                 f"differ): the store's {json.dumps({k: theirs.get(k) for k in diff})}, this "
                                 f"one's {json.dumps({k: mine.get(k) for k in diff})}; use another directory")
            return
        tmp = target.with_name(f"store.{os.getpid()}.tmp.json")
        tmp.write_text(json.dumps(mine, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, target)

    # -- the tiles ------------------------------------------------------------

    def _bounds(self, n: int) -> list:
        return [(s, min(s + self.tile, n)) for s in range(0, n, self.tile)]

    def _tiles(self, n: int, test: bool) -> list:
        """``(kind, a, I, J)`` tiles needed for the first ``n`` training inputs, ordered by
        the largest training tile index."""
        nt_ = -(-n // self.tile)
        inv = np.asarray(self.group.inverses)
        out = []
        for top in range(nt_):              # the tiles whose largest index is top
            for a in self.reps:
                out += [("train", a, i, top) for i in range(top + 1)]
                if inv[a] != a:             # not symmetric: the lower triangle too
                    out += [("train", a, top, j) for j in range(top)]
            if test:
                for a in range(self.group.order):
                    out += [("test", a, i, top) for i in range(-(-self.x_test.shape[0] // self.tile))]
        return out

    def _file(self, kind, a, i, j) -> Path:
        return self.path / f"{kind}_g{a}_{i}_{j}.npz"

    def _compute(self, kind, a, i, j) -> dict:
        t = self.tile
        x1 = (self.x_train if kind == "train" else self.x_test)[i * t:(i + 1) * t].astype(self.dtype)
        x2 = self.x_train[j * t:(j + 1) * t].astype(self.dtype)
        if kind == "train" and a == 0 and i == j:
            k = self.kernel_fn(x1, None, self.gets)
        else:
            k = self.kernel_fn(x1, self.group.act(a, x2), self.gets)
        return {g: np.asarray(getattr(k, g), self.dtype) for g in self.gets}

    def missing(self, n: Optional[int] = None, test: bool = True) -> list:
        """Tiles not yet on disk for the first ``n`` training inputs (default all)."""
        n = self.x_train.shape[0] if n is None else n
        return [tl for tl in self._tiles(n, test and self.x_test is not None) if not self._file(*tl).exists()]

    def compute(self, n: Optional[int] = None, test: bool = True, progress: bool = True, wait: bool = True,
                start: float = 0.0) -> int:
        """Compute and save every missing tile for the first ``n`` training inputs that no other
        process holds, then (``wait``) wait for the tiles others hold, computing any whose holder
        died. Safe to run in several processes on one store at once.

        Args:
            n: the first ``n`` training inputs (default all).
            test: also the test tiles.
            progress: a progress bar.
            wait: return only when every tile is on disk (else after one pass).
            start: where in the list of missing tiles this process starts, as a fraction in
                ``[0, 1)`` (workers ``k`` of ``K`` pass ``k / K`` and meet less often).

        Returns:
            The number of tiles this process computed.
        """
        from tqdm.auto import tqdm
        if not 0.0 <= start < 1.0:
            raise ValueError(f"start must be a fraction in [0, 1); got {start}")
        todo = self.missing(n, test)
        k = int(start * len(todo))
        todo = todo[k:] + todo[:k]
        computed = 0
        bar = tqdm(total=len(todo), desc=f"kernel tiles {self.path.name}", unit="tile", disable=not progress)
        for block in (False, True) if wait else (False,):
            for tl in todo:
                if self._file(*tl).exists():
                    continue
                done = self._claimed(tl, block)
                if done is None:        # another process holds it
                    continue
                computed += done
                bar.update(1)
            todo = [tl for tl in todo if not self._file(*tl).exists()]
        bar.close()
        return computed

    def _claimed(self, tl, block: bool) -> Optional[int]:
        """Under this process's claim on tile ``tl``: compute and save it unless it is on disk
        by then. Returns 1 (computed), 0 (already there) or None (claimed by another process,
        with ``block=False``); with ``block=True`` waits for the claim."""
        claim = self._file(*tl).with_suffix(".claim")
        with open(claim, "a") as f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
            except BlockingIOError:
                return None
            try:
                if self._file(*tl).exists():
                    return 0
                self._save(tl, self._compute(*tl))
                return 1
            finally:
                claim.unlink(missing_ok=True)        # after the tile exists: a later claimant sees it

    def _save(self, tl, vals: dict) -> None:
        target = self._file(*tl)
        tmp = target.with_name(f"{target.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, **vals)
        os.replace(tmp, target)

    def self_orbit(self, get: str = "nngp", chunk: int = 8) -> jnp.ndarray:
        """``(|G|, M)`` ``[a, n] = k(x_n, a x_n)`` for each test input (the kernel between
        the points of one orbit; saved as ``self_orbit_<get>.npy``)."""
        target = self.path / f"self_orbit_{get}.npy"
        if target.exists():
            return jnp.asarray(np.load(target))
        m = self.x_test.shape[0]
        out = np.zeros((self.group.order, m), self.x_test.dtype)
        for s in range(0, m, chunk):
            xc = self.x_test[s:s + chunk].astype(self.dtype)
            for a in range(self.group.order):
                out[a, s:s + xc.shape[0]] = np.diag(np.asarray(self.kernel_fn(xc, self.group.act(a, xc), get)))
        tmp = target.with_name(f"{target.stem}.{os.getpid()}.tmp.npy")
        np.save(tmp, out)
        os.replace(tmp, target)
        return jnp.asarray(out)

    def _load(self, kind, a, i, j) -> dict:
        """A saved tile; one that cannot be read (truncated, corrupt, without a kernel) is
        recomputed and saved again, with a warning naming it."""
        target = self._file(kind, a, i, j)
        try:
            with np.load(target) as f:
                return {g: f[g] for g in self.gets}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            warnings.warn(f"tile {target} could not be read ({type(e).__name__}: {e}); recomputing it",
                          RuntimeWarning, stacklevel=2)
            target.unlink(missing_ok=True)
            self._claimed((kind, a, i, j), block=True)
            with np.load(target) as f:
                return {g: f[g] for g in self.gets}

    # -- assembled blocks -------------------------------------------------------

    def train_blocks(self, n: int) -> dict:
        """``{kernel: (|G|, n, n)}`` ``[a] = k(X_n, a X_n)`` for the first ``n`` training inputs
        (their tiles must be computed: :meth:`compute`)."""
        inv = np.asarray(self.group.inverses)
        order = self.group.order
        out = {g: np.zeros((order, n, n), self.x_train.dtype) for g in self.gets}
        bounds = self._bounds(n)
        for a in self.reps:
            for i, (r0, r1) in enumerate(bounds):
                for j, (c0, c1) in enumerate(bounds):
                    if inv[a] == a and i > j:
                        continue
                    tile = self._load("train", a, i, j)
                    for g in self.gets:
                        v = tile[g][:r1 - r0, :c1 - c0]
                        out[g][a, r0:r1, c0:c1] = v
                        if inv[a] == a and i < j:
                            out[g][a, c0:c1, r0:r1] = v.T
                        if inv[a] != a:
                            out[g][inv[a], c0:c1, r0:r1] = v.T
        for g in self.gets:                  # the diagonal tiles of the symmetric blocks exactly symmetric
            for a in self.reps:
                if inv[a] == a:
                    out[g][a] = 0.5 * (out[g][a] + out[g][a].T)
        return {g: jnp.asarray(v) for g, v in out.items()}

    def test_blocks(self, n: int) -> dict:
        """``{kernel: (|G|, M, n)}`` ``[a] = k(x_test, a X_n)``."""
        m = self.x_test.shape[0]
        out = {g: np.zeros((self.group.order, m, n), self.x_train.dtype) for g in self.gets}
        for a in range(self.group.order):
            for i, (r0, r1) in enumerate(self._bounds(m)):
                for j, (c0, c1) in enumerate(self._bounds(n)):
                    tile = self._load("test", a, i, j)
                    for g in self.gets:
                        out[g][a, r0:r1, c0:c1] = tile[g][:r1 - r0, :c1 - c0]
        return {g: jnp.asarray(v) for g, v in out.items()}


def orbit_test_blocks(group: Group, test: jnp.ndarray) -> jnp.ndarray:
    """The test blocks of the orbit points from those of the points themselves:
    ``(|G|, M, N)`` ``[a] = k(x, a X)`` -> ``(|G|, |G|, M, N)`` ``[h, a] = k(h x, a X)
    = k(x, h^-1 a X)`` (the kernel is invariant under the simultaneous action).

    >>> from ntkequi import groups
    >>> c4 = groups.planar_rotations(4)
    >>> t = jnp.arange(4.0).reshape(4, 1, 1)
    >>> orbit_test_blocks(c4, t)[1, :, 0, 0].tolist()       # h = 1: blocks h^-1 a = a - 1
    [3.0, 0.0, 1.0, 2.0]
    """
    table, inv = np.asarray(group.table), np.asarray(group.inverses)
    idx = table[inv]                       # [h, a] -> h^-1 a
    return jnp.asarray(test)[jnp.asarray(idx)]


def orbit_point_blocks(group: Group, test: jnp.ndarray) -> jnp.ndarray:
    """The test blocks of every orbit point as one test set, group-major (what
    :func:`~ntkequi.kernels.solve_blocks` takes to predict on all of them): ``(|G|, M, N)``
    ``[a] = k(x, a X)`` -> ``(|G|, |G| M, N)`` ``[a, h M + i] = k(h x_i, a X)``. Its first
    block ``[:1]`` is the unaugmented kernel's, ``k(h x_i, X)``.

    >>> from ntkequi import groups
    >>> c4 = groups.planar_rotations(4)
    >>> t = jnp.arange(4.0).reshape(4, 1, 1)
    >>> orbit_point_blocks(c4, t)[0, :, 0].tolist()          # k(h x, X) = k(x, h^-1 X)
    [0.0, 3.0, 2.0, 1.0]
    """
    order, m, n = test.shape
    return jnp.swapaxes(orbit_test_blocks(group, test), 0, 1).reshape(order, order * m, n)
