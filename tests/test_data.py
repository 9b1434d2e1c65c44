"""FashionMNIST / MNIST loading: checksums, clear errors, splits, OOD sets."""
import gzip
import shutil

import numpy as np
import pytest

from ntkequi import data
FILES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


def test_full_sets_load_verified(data_dir):
    for ds in ("fashion_mnist", "mnist"):
        x, y = data.load(ds, "train", data_dir)
        assert x.shape == (60000, 28, 28, 1) and x.dtype == np.float32 and y.shape == (60000,)
        assert 0.0 <= x.min() and x.max() == 1.0
        xt, yt = data.load(ds, "test", data_dir)
        assert xt.shape == (10000, 28, 28, 1)
    # a known property of FashionMNIST: balanced classes, 6000 / 1000 per class
    _, y = data.load("fashion_mnist", "train", data_dir)
    _, yt = data.load("fashion_mnist", "test", data_dir)
    assert np.all(np.bincount(y) == 6000) and np.all(np.bincount(yt) == 1000)


def _copy_labels(data_dir, tmp_path):
    """A folder with the (small) FashionMNIST test-label file and its SHA256SUMS line."""
    d = tmp_path / "fashion-mnist"
    d.mkdir()
    shutil.copy(data_dir / "fashion-mnist" / FILES[3], d / FILES[3])
    return d


def test_verify_official_regzipped_corrupt_and_sha256sums(data_dir, tmp_path):
    d = _copy_labels(data_dir, tmp_path)
    md5, sha, _ = data.DATASETS["fashion_mnist"]["files"][FILES[3]]
    assert data.verify_file(d / FILES[3], md5, sha) == "md5"
    # re-gzipped (as Debian's dataset-fashion-mnist): other bytes, same content
    content = gzip.decompress((d / FILES[3]).read_bytes())
    (d / FILES[3]).write_bytes(gzip.compress(content, compresslevel=1, mtime=0))
    assert data.verify_file(d / FILES[3], md5, sha) == "content-sha256"
    # one flipped label byte: a clear error naming the file
    bad = bytearray(content)
    bad[100] ^= 1
    (d / FILES[3]).write_bytes(gzip.compress(bytes(bad)))
    with pytest.raises(data.DataError, match="t10k-labels.*official"):
        data.verify_file(d / FILES[3], md5, sha)
    # a SHA256SUMS beside the file that disagrees
    (d / FILES[3]).write_bytes(gzip.compress(content))
    (d / "SHA256SUMS").write_text("0" * 64 + "  " + FILES[3] + "\n")
    with pytest.raises(data.DataError, match="SHA256SUMS"):
        data.verify_file(d / FILES[3], md5, sha)


def test_missing_file_names_file_and_places(tmp_path):
    with pytest.raises(data.DataError, match=r"t10k-images-idx3-ubyte.gz not found; looked for .*fashion-mnist"):
        data.load("fashion_mnist", "test", tmp_path)
    with pytest.raises(data.DataError, match="does not exist"):
        data.load("fashion_mnist", "test", tmp_path / "nowhere")
    with pytest.raises(ValueError, match="dataset must be one of"):
        data.load("cifar10", "test", tmp_path)


@pytest.mark.parametrize("online", ["not installed", "offline"])
def test_no_directory_and_no_tfds_is_a_clear_error(monkeypatch, online):
    # tensorflow-datasets is the optional extra [online]: absent, or installed without a network,
    # the error names the environment variable and the extra (a stand-in module, so the test
    # does not depend on whether the extra is installed here)
    import sys
    import types
    monkeypatch.delenv("NTKEQUI_DATA_DIR", raising=False)
    if online == "not installed":
        monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)       # import raises ImportError
    else:
        fake = types.ModuleType("tensorflow_datasets")
        fake.load = lambda *a, **k: (_ for _ in ()).throw(ConnectionError("offline"))
        monkeypatch.setitem(sys.modules, "tensorflow_datasets", fake)
    with pytest.raises(data.DataError, match=r"NTKEQUI_DATA_DIR.*ntkequi\[online\]") as err:
        data.load("fashion_mnist", "test")
    assert ("offline" if online == "offline" else "ModuleNotFoundError") in str(err.value)


def test_read_idx_rejects_bad_header():
    with pytest.raises(data.DataError, match="IDX header"):
        data.read_idx(bytes([0, 0, 8, 1, 0, 0, 0, 5, 1, 2]))
    np.testing.assert_array_equal(data.read_idx(bytes([0, 0, 8, 1, 0, 0, 0, 2, 7, 9])), [7, 9])


def test_splits_disjoint_and_ood_sets(data_dir):
    cfg = data.SplitConfig(n_train=50, n_val=20, n_test=30, seed=1)
    s = data.splits(cfg, data_dir=data_dir)
    assert [s[k][0].shape[0] for k in ("train", "val", "test")] == [50, 20, 30]
    tr = {a.tobytes() for a in s["train"][0]}
    assert not tr & {a.tobytes() for a in s["val"][0]}
    np.testing.assert_array_equal(data.splits(cfg, data_dir=data_dir)["train"][1], s["train"][1])
    for name in data.OOD_SETS:
        x = data.ood_set(name, 7, data_dir=data_dir)
        assert x.shape == (7, 28, 28, 1) and 0 <= x.min() and x.max() <= 1
    with pytest.raises(ValueError, match="unknown out-of-distribution set"):
        data.ood_set("cifar", 3)


def test_downsample_averages_and_commutes_with_rot90():
    x = np.random.default_rng(0).random((3, 28, 28, 1))
    d = data.downsample(x, 4)
    assert d.shape == (3, 7, 7, 1)
    np.testing.assert_allclose(d[:, 0, 0, 0], x[:, :4, :4, 0].mean(axis=(1, 2)))
    np.testing.assert_allclose(data.downsample(np.rot90(x, 1, axes=(1, 2)), 4), np.rot90(d, 1, axes=(1, 2)))
    with pytest.raises(ValueError, match="does not divide"):
        data.downsample(x, 3)
