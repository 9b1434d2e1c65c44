"""FashionMNIST / MNIST from verified IDX files (or tensorflow-datasets), splits, and the
out-of-distribution sets.

Image data come from a directory given as ``data_dir`` (the scripts' ``--data-dir``)
or the ``NTKEQUI_DATA_DIR`` environment variable, holding the original gzipped IDX
files under their standard names, either directly or in ``fashion-mnist/`` and
``mnist/`` subfolders. Each file is verified before use:

1. its md5 against the official checksum (the file as published), or, failing that,
   the sha256 of its *decompressed* content against the official content (a
   re-gzipped copy such as Debian's ``dataset-fashion-mnist`` package, whose
   compressed bytes differ);
2. if the folder holding it has a ``SHA256SUMS`` file listing it, against that too.

A missing or corrupt file raises :class:`DataError` naming the file and the places
looked at. With no directory, tensorflow-datasets is used (needs TensorFlow and,
the first time, internet). Images are returned as float32 ``(N, 28, 28, 1)`` in
[0, 1], labels as int32 ``(N,)``.
"""
from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import os
from pathlib import Path
from typing import Optional

import numpy as np

__all__ = ["DataError", "DATASETS", "OOD_SETS", "SplitConfig", "SPLIT_PRESETS", "data_dir_from_env",
           "verify_file", "read_idx", "load", "splits", "ood_set", "downsample"]

ENV_VAR = "NTKEQUI_DATA_DIR"

# file -> (official md5 of the .gz, sha256 of the decompressed IDX content, number of items)
DATASETS = {
    "fashion_mnist": {"folder": "fashion-mnist", "tfds": "fashion_mnist", "files": {
        "train-images-idx3-ubyte.gz": ("8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                                       "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888", 60000),
        "train-labels-idx1-ubyte.gz": ("25c81989df183df01b3e8a0aad5dffbe",
                                       "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9", 60000),
        "t10k-images-idx3-ubyte.gz": ("bef4ecab320f06d8554ea6380940ec79",
                                      "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b", 10000),
        "t10k-labels-idx1-ubyte.gz": ("bb300cfdad3c16e7a12a480ee83cd310",
                                      "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34", 10000)}},
    "mnist": {"folder": "mnist", "tfds": "mnist", "files": {
        "train-images-idx3-ubyte.gz": ("f68b3c2dcbeaaa9fbdd348bbdeb94873",
                                       "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db", 60000),
        "train-labels-idx1-ubyte.gz": ("d53e105ee54ea40749a09fcbcd1e9432",
                                       "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5", 60000),
        "t10k-images-idx3-ubyte.gz": ("9fb629c4189551a2d022fa330f9573f3",
                                      "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7", 10000),
        "t10k-labels-idx1-ubyte.gz": ("ec29112dd5afa0611ce80d1b7f02629c",
                                      "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2", 10000)}},
}
_PREFIX = {"train": "train", "test": "t10k"}

#: out-of-distribution evaluation sets available by name (see :func:`ood_set`)
OOD_SETS = ("mnist", "noise", "fashion_mnist_test")


class DataError(RuntimeError):
    """A data file is missing, corrupt, or cannot be loaded."""


def data_dir_from_env(data_dir=None) -> Optional[Path]:
    """``data_dir`` if given, else ``$NTKEQUI_DATA_DIR`` if set, else None."""
    d = data_dir if data_dir is not None else os.environ.get(ENV_VAR) or None
    return None if d is None else Path(d).expanduser()


def _digest(data: bytes, algo: str) -> str:
    return hashlib.new(algo, data).hexdigest()


def verify_file(path, md5: str, content_sha256: str) -> str:
    """Verify one gzipped IDX file; returns how it was verified ('md5' or
    'content-sha256') and raises :class:`DataError` otherwise. Also checks the
    ``SHA256SUMS`` beside it when that lists the file."""
    path = Path(path)
    raw = path.read_bytes()
    sums = path.parent / "SHA256SUMS"
    if sums.exists():
        listed = {}
        for line in sums.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2:
                listed[parts[1].lstrip("*")] = parts[0].lower()
        if path.name in listed and listed[path.name] != _digest(raw, "sha256"):
            raise DataError(f"{path}: sha256 {_digest(raw, 'sha256')} does not match {sums} "
                            f"({listed[path.name]}); the file is corrupt or was replaced")
    got_md5 = _digest(raw, "md5")
    if got_md5 == md5:
        return "md5"
    try:
        content = gzip.decompress(raw)
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: not a readable gzip file ({e}); md5 {got_md5}, official {md5}") from e
    if _digest(content, "sha256") == content_sha256:
        return "content-sha256"
    raise DataError(f"{path}: md5 {got_md5} is not the official {md5}, and its decompressed content "
                    f"does not match the official data either (truncated or corrupt file?)")


def read_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse an uncompressed IDX file (unsigned-byte data) into an array."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataError(f"{name}: not an unsigned-byte IDX file (magic {data[:4].hex()})")
    ndim = data[3]
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    if len(data) - offset != int(np.prod(dims)):
        raise DataError(f"{name}: IDX header says shape {dims} but holds {len(data) - offset} bytes")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(dims)


def _candidates(data_dir: Path, dataset: str, fname: str):
    return [data_dir / DATASETS[dataset]["folder"] / fname, data_dir / fname]


@functools.lru_cache(maxsize=16)
def _load_from_dir(data_dir: Path, dataset: str, split: str):
    out = []
    for kind in ("images", "labels"):
        fname = f"{_PREFIX[split]}-{kind}-idx{3 if kind == 'images' else 1}-ubyte.gz"
        md5, sha, n = DATASETS[dataset]["files"][fname]
        found = [p for p in _candidates(data_dir, dataset, fname) if p.is_file()]
        if not found:
            raise DataError(f"{dataset} {split} {kind}: {fname} not found; looked for "
                            f"{', '.join(str(p) for p in _candidates(data_dir, dataset, fname))} "
                            f"(set --data-dir or {ENV_VAR} to the folder holding the IDX files)")
        verify_file(found[0], md5, sha)
        arr = read_idx(gzip.decompress(found[0].read_bytes()), str(found[0]))
        if arr.shape[0] != n:
            raise DataError(f"{found[0]}: {arr.shape[0]} items, expected {n}")
        out.append(arr)
    return out[0], out[1]


def _load_tfds(dataset: str, split: str):
    try:
        import tensorflow_datasets as tfds
        ds = tfds.load(DATASETS[dataset]["tfds"], split=split, batch_size=-1, as_supervised=True)
        images, labels = tfds.as_numpy(ds)
    except Exception as e:  # noqa: BLE001 - any failure means: no online path here
        raise DataError(
            f"no data directory given (--data-dir or {ENV_VAR}) and tensorflow-datasets could not "
            f"load {DATASETS[dataset]['tfds']!r} ({type(e).__name__}: {e}; it is the extra "
            f"`pip install 'ntkequi[online]'`). Offline, point {ENV_VAR} at a folder with the gzipped "
            f"IDX files.") from e
    return np.asarray(images)[..., 0] if np.ndim(images) == 4 else np.asarray(images), np.asarray(labels)


def load(dataset: str, split: str, data_dir=None):
    """``(images, labels)`` of ``dataset`` ('fashion_mnist' or 'mnist') and
    ``split`` ('train' or 'test'): float32 ``(N, 28, 28, 1)`` in [0, 1] and int32
    ``(N,)``. From ``data_dir`` / ``$NTKEQUI_DATA_DIR`` (verified), else tfds."""
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {sorted(DATASETS)}; got {dataset!r}")
    if split not in _PREFIX:
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}")
    d = data_dir_from_env(data_dir)
    if d is not None:
        if not d.is_dir():
            raise DataError(f"data directory {d} does not exist")
        images, labels = _load_from_dir(d.resolve(), dataset, split)
    else:
        images, labels = _load_tfds(dataset, split)
    return (images.astype(np.float32)[..., None] / 255.0), labels.astype(np.int32)


@dataclasses.dataclass(frozen=True)
class SplitConfig:
    """How FashionMNIST is split. ``train`` and ``val`` are disjoint random subsets
    (permutation by ``seed``) of the official 60,000 training images; ``test`` the
    first ``n_test`` of a permutation of the official 10,000 test images (all if None)."""
    n_train: int = 1000
    n_val: int = 500
    n_test: Optional[int] = 1000
    seed: int = 0

    def __post_init__(self):
        if self.n_train < 1 or self.n_val < 0 or self.n_train + self.n_val > 60000:
            raise ValueError(f"need 1 <= n_train and n_train + n_val <= 60000; got "
                             f"n_train={self.n_train}, n_val={self.n_val}")
        if self.n_test is not None and not 1 <= self.n_test <= 10000:
            raise ValueError(f"n_test must be in [1, 10000] or None; got {self.n_test}")


#: named splits: 'small' for a 2-core CPU, 'paper' = the full sets (55k/5k/10k)
SPLIT_PRESETS = {
    "tiny": SplitConfig(n_train=64, n_val=32, n_test=64),
    "small": SplitConfig(n_train=2000, n_val=500, n_test=1000),
    "paper": SplitConfig(n_train=55000, n_val=5000, n_test=None),
}


def splits(cfg: SplitConfig, dataset: str = "fashion_mnist", data_dir=None) -> dict:
    """``{'train': (x, y), 'val': (x, y), 'test': (x, y)}`` of ``dataset`` by ``cfg``."""
    xtr, ytr = load(dataset, "train", data_dir)
    xte, yte = load(dataset, "test", data_dir)
    rng = np.random.default_rng(cfg.seed)
    p = rng.permutation(xtr.shape[0])
    tr, va = p[:cfg.n_train], p[cfg.n_train:cfg.n_train + cfg.n_val]
    te = rng.permutation(xte.shape[0])[:cfg.n_test]
    return {"train": (xtr[tr], ytr[tr]), "val": (xtr[va], ytr[va]), "test": (xte[te], yte[te])}


def downsample(x, factor: int) -> np.ndarray:
    """Average-pool images ``(N, H, W, C)`` by ``factor`` (which must divide H and W):
    ``(N, H/factor, W/factor, C)``. 28x28 -> 7x7 with factor 4, small enough for kernels
    that hold the full spatial covariance. Commutes exactly with 90-degree rotations."""
    x = np.asarray(x)
    n, h, w, c = x.shape
    if h % factor or w % factor:
        raise ValueError(f"factor {factor} does not divide the image size {h}x{w}")
    return x.reshape(n, h // factor, factor, w // factor, factor, c).mean(axis=(2, 4))


def ood_set(name: str, n: int, seed: int = 0, data_dir=None) -> np.ndarray:
    """``n`` evaluation images ``(n, 28, 28, 1)`` by name: 'mnist' (MNIST test
    digits), 'noise' (i.i.d. uniform [0, 1] pixels), 'fashion_mnist_test'
    (FashionMNIST test images: the in-distribution reference)."""
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
        raise ValueError(f"n (the number of images) must be an integer >= 0; got {n!r}")
    rng = np.random.default_rng(seed)
    if name == "noise":
        return rng.uniform(0.0, 1.0, (n, 28, 28, 1)).astype(np.float32)
    if name == "mnist":
        x, _ = load("mnist", "test", data_dir)
    elif name == "fashion_mnist_test":
        x, _ = load("fashion_mnist", "test", data_dir)
    else:
        raise ValueError(f"unknown out-of-distribution set {name!r}; available: {OOD_SETS}")
    if not 1 <= n <= x.shape[0]:
        raise ValueError(f"n must be in [1, {x.shape[0]}] for {name!r}; got {n}")
    return x[rng.permutation(x.shape[0])[:n]]
