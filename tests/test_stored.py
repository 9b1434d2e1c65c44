"""Kernel tiles saved as they finish (ntkequi.kernels.stored): the assembled blocks equal the
ones computed in one call, nested training sets share tiles, a resumed store computes only
what is missing, the solve from saved blocks equals predict, and a store too large for the
memory budget is refused before anything is computed."""
import jax.numpy as jnp
import numpy as np
import pytest

from ntkequi import groups
from ntkequi.groups import irreps
from ntkequi.kernels import KernelTooLargeError, TileStore, kernel_blocks, orbit_test_blocks, predict, solve_blocks
from ntkequi.nn import ArchSpec

C4 = groups.rotations(4, (8, 8))
# an MLP's NTK on images is invariant under pixel permutations (it sees inner products only),
# so it has the C4 block structure, and compiles in a fraction of a CNN kernel's time
SPEC = ArchSpec(kind="mlp", depth=2)


def _data(n=11, m=5, seed=0):
    rng = np.random.default_rng(seed)
    return (jnp.asarray(rng.normal(size=(n, 8, 8, 1))), jnp.asarray(rng.normal(size=(m, 8, 8, 1))),
            jnp.asarray(np.eye(10)[rng.integers(0, 10, n)] - 0.1))


def test_assembled_blocks_equal_one_call_for_nested_sizes(tmp_path):
    x, xt, _ = _data()
    store = TileStore(tmp_path, SPEC.kernel_fn, C4, x, xt, tile=4)
    store.compute(progress=False)
    for n in (4, 7, 11):                     # a tile boundary, inside a tile, all
        tb, ref = store.train_blocks(n), kernel_blocks(SPEC.kernel_fn, C4, x[:n], None, ("nngp", "ntk"))
        te, reft = store.test_blocks(n), kernel_blocks(SPEC.kernel_fn, C4, xt, x[:n], ("nngp", "ntk"))
        for g in ("nngp", "ntk"):
            np.testing.assert_allclose(tb[g], ref[g], rtol=1e-13, atol=1e-15)
            np.testing.assert_allclose(te[g], reft[g], rtol=1e-13, atol=1e-15)
            np.testing.assert_array_equal(tb[g][0], tb[g][0].T)       # exactly symmetric


def test_resume_computes_only_missing_tiles_and_smaller_sets_first(tmp_path):
    x, xt, _ = _data()
    store = TileStore(tmp_path, SPEC.kernel_fn, C4, x, xt, tile=4)
    first = store.compute(n=4, progress=False)          # the tiles of the first 4 inputs
    assert first > 0 and not store.missing(4)
    again = TileStore(tmp_path, SPEC.kernel_fn, C4, x, xt, tile=4)   # a new process, same directory
    rest = again.missing()
    assert rest and all(max(i, j) >= 1 for _, _, i, j in rest)      # nothing of the first tile
    assert again.compute(progress=False) == len(rest)
    assert again.compute(progress=False) == 0
    # C4: blocks 0 and 2 symmetric (upper tiles only), block 1 full, block 3 = B_1^T not stored
    ntr = sum(1 for f in tmp_path.glob("train_*.npz"))
    assert ntr == 6 + 6 + 9 and not list(tmp_path.glob("train_g3_*")) and not list(tmp_path.glob("*.tmp*"))


def test_solve_from_saved_blocks_equals_predict_and_orbit_blocks(tmp_path):
    x, xt, y = _data()
    store = TileStore(tmp_path, SPEC.kernel_fn, C4, x, xt, tile=4)
    store.compute(progress=False)
    ts = [0.5, float("inf")]
    got = solve_blocks(store.train_blocks(11), store.test_blocks(11), C4.orbit_out(y), ts, irreps(C4))
    ref = predict(SPEC, x, y, xt, ts, group=C4, solver="structured")
    np.testing.assert_allclose(got.mean, ref.mean, rtol=1e-9, atol=1e-11)
    # the rotated test points' blocks by re-indexing, equal to computing them
    ob = orbit_test_blocks(C4, store.test_blocks(11)["ntk"])
    for h in range(4):
        direct = kernel_blocks(SPEC.kernel_fn, C4, C4.act(h, xt), x, ("ntk",))["ntk"]
        np.testing.assert_allclose(ob[h], direct, rtol=1e-12, atol=1e-14)
    # unaugmented: the trivial "group" of the identity block is plain kernel regression
    plain = solve_blocks({"ntk": store.train_blocks(11)["ntk"][:1]}, {"ntk": store.test_blocks(11)["ntk"][:1]},
                         y[None], ts, [np.ones((1, 1, 1))])
    np.testing.assert_allclose(plain.mean, predict(SPEC, x, y, xt, ts, solver="direct").mean, rtol=1e-8, atol=1e-10)


def test_too_large_store_is_refused_before_computing(tmp_path):
    x, xt, _ = _data()
    with pytest.raises(KernelTooLargeError, match=r"11 training x 5 test.*at most about \d+ training"):
        TileStore(tmp_path / "big", SPEC.kernel_fn, C4, x, xt, max_bytes=10_000)
    assert not (tmp_path / "big").exists()
    with pytest.raises(ValueError, match="tile"):
        TileStore(tmp_path, SPEC.kernel_fn, C4, x, xt, tile=0)
    with pytest.raises(ValueError, match="inexactly"):
        TileStore(tmp_path, SPEC.kernel_fn, groups.rotations(8, (8, 8)), x, xt)


def test_float32_tiles_assemble_in_float64_and_match_the_float64_kernel(tmp_path):
    """A float32 kernel (faster) solved in float64: blocks in the inputs' dtype, entries within
    float32 rounding of the float64 kernel, tiles saved as float32; the orbit solve from them
    (finite t and t = inf) agrees with the float64 one to float32-level accuracy."""
    x, xt, y = _data()
    f32 = TileStore(tmp_path / "f32", SPEC.kernel_fn, C4, x, xt, tile=4, dtype="float32")
    f64 = TileStore(tmp_path / "f64", SPEC.kernel_fn, C4, x, xt, tile=4)
    f32.compute(progress=False)
    f64.compute(progress=False)
    with np.load(next((tmp_path / "f32").glob("train_*.npz"))) as tile:
        assert tile["ntk"].dtype == np.float32
    b32, b64 = f32.train_blocks(11), f64.train_blocks(11)
    assert b32["ntk"].dtype == jnp.float64
    np.testing.assert_allclose(b32["ntk"], b64["ntk"], rtol=2e-6)
    ts = [1.0, float("inf")]
    sol = {k: solve_blocks(s.train_blocks(11), s.test_blocks(11), C4.orbit_out(y), ts, irreps(C4))
           for k, s in (("32", f32), ("64", f64))}
    scale = float(np.abs(sol["64"].mean).max())
    np.testing.assert_allclose(sol["32"].mean, sol["64"].mean, atol=1e-4 * scale)
    with pytest.raises(ValueError, match="dtype must be"):
        TileStore(tmp_path / "bad", SPEC.kernel_fn, C4, x, xt, dtype="float16")


def test_three_processes_fill_one_store_each_tile_once_and_a_killed_worker_leaves_its_tile(tmp_path):
    """A worker claims a tile and is killed (SIGKILL) mid-tile; then three workers fill the store
    at once: every tile is computed exactly once among them (the killed worker's included), and
    the assembled blocks equal those of one process filling a store alone, bitwise."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path
    script = Path(__file__).parent / "scripts" / "tile_worker.py"
    shared = tmp_path / "shared"
    victim = subprocess.Popen([sys.executable, str(script), str(shared), "--hold"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (shared / "held").exists():
        assert victim.poll() is None, victim.stderr.read()[-2000:]
        assert time.time() < deadline, "the holding worker never claimed a tile"
        time.sleep(0.2)
    held = json.loads((shared / "held").read_text())
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    workers = [subprocess.Popen([sys.executable, str(script), str(shared), "--start", str(k / 3)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k in range(3)]
    outs = [w.communicate(timeout=300) for w in workers]
    assert all(w.returncode == 0 for w in workers), [o[1][-2000:] for o in outs]
    computed = [tuple(t) for o in outs for t in json.loads(o[0].strip().splitlines()[-1])]
    sys.path.insert(0, str(script.parent))
    from tile_worker import store
    alone = store(tmp_path / "alone")
    every = alone.missing()
    assert sorted(computed) == sorted(every), "each tile exactly once"          # no tile twice, none left
    assert tuple(held) in computed
    alone.compute(progress=False)
    filled = store(shared)
    assert not filled.missing() and not list(shared.glob("*.claim"))
    for a, b in [(filled.train_blocks(6), alone.train_blocks(6)), (filled.test_blocks(6), alone.test_blocks(6))]:
        for g in a:
            np.testing.assert_array_equal(a[g], b[g])


def test_store_refuses_another_computation_and_recomputes_a_corrupt_tile(tmp_path):
    """Opening a store with other inputs (or tile size) names the fields and both values; a
    truncated tile file is recomputed with a warning naming it, and the blocks are unchanged."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent / "scripts"))
    from tile_worker import store
    s = store(tmp_path / "s")
    s.compute(progress=False)
    before = s.train_blocks(6)
    with pytest.raises(ValueError, match=r"fields \['x_train'\] differ.*sha256.*sha256"):
        TileStore(tmp_path / "s", s.kernel_fn, s.group, s.x_train + 1.0, s.x_test, tile=2)
    with pytest.raises(ValueError, match=r"fields \['tile'\] differ.*\"tile\": 2.*\"tile\": 3"):
        TileStore(tmp_path / "s", s.kernel_fn, s.group, s.x_train, s.x_test, tile=3)
    broken = s._file("train", 1, 0, 1)
    broken.write_bytes(broken.read_bytes()[:40])
    with pytest.warns(RuntimeWarning, match=f"tile .*{broken.name} could not be read.*recomputing"):
        after = s.train_blocks(6)
    for g in before:
        np.testing.assert_array_equal(after[g], before[g])


def test_two_jax_processes_share_one_store_and_give_one_process_blocks(tmp_path):
    """Two processes under jax.distributed (ntkequi.distributed; localhost coordinator, gloo CPU
    collectives) each compute a share of one store's tiles, meet at a barrier, and the blocks
    equal one process's bitwise."""
    import json
    import socket
    import subprocess
    import sys
    from pathlib import Path
    script = Path(__file__).parent / "scripts" / "tile_worker.py"
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        port = sock.getsockname()[1]
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path / "shared"), "--distributed", str(port), "2",
                               str(i)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    got = [json.loads(o[0].strip().splitlines()[-1]) for o in outs]
    assert sorted((g["process"], g["processes"]) for g in got) == [(0, 2), (1, 2)]
    computed = [tuple(t) for g in got for t in g["tiles"]]
    sys.path.insert(0, str(script.parent))
    from tile_worker import store
    alone = store(tmp_path / "alone")
    assert sorted(computed) == sorted(alone.missing())
    alone.compute(progress=False)
    shared = store(tmp_path / "shared")
    for a, b in [(shared.train_blocks(6), alone.train_blocks(6)), (shared.test_blocks(6), alone.test_blocks(6))]:
        for g in a:
            np.testing.assert_array_equal(a[g], b[g])
