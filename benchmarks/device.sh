#!/usr/bin/env bash
# The one prepared check for a session that is lent a GPU machine (device tool), sized to
# its 15 minutes of device time. The machine has Python 3.12, JAX 0.11.x with CUDA, flax,
# optax, numpy, scipy, matplotlib, pytest -- but not neural-tangents or frozendict, and it
# cannot download anything. So:
#
#   here (CPU machine):  bash benchmarks/device.sh prepare
#                        (puts their wheels into .whl/, which git ignores)
#   device tool:         run(command="bash benchmarks/device.sh run", carry=[".whl"], timeout_s=600)
#
# `run` installs the wheels into /tmp/site, puts the repository on PYTHONPATH (no pip
# install of ntkequi: its pins name the JAX range tested on CPU), checks versions, runs the
# compatibility and core tests on the GPU (they use no data files), then the benchmarks
# (--quick, then full sizes), and leaves versions.txt, tests.log, bench*.log and
# RESULTS*.md in $OUT (at most about 9.5 minutes in all). Copy the new section of
# RESULTS.md into benchmarks/RESULTS.md, with the device named.
#
#   device tool, second call:  run(command="bash benchmarks/device.sh paper", carry=[".whl", ".data"],
#                                  timeout_s=600)
#
# `paper` trains the orbit-consistency table's paper preset for at most 8 minutes (it runs
# seed-major, so that is a prefix of its first seed: the C4 ensemble, then the baselines,
# then C8, ...; every finished model is a line of results.jsonl) and leaves the run's small
# files (config, results.jsonl, versions) and its log in $OUT/fmnist_osp_table-paper. It needs
# the FashionMNIST/MNIST IDX files: $NTKEQUI_DATA_DIR, else .data/ (an ignored folder the
# session fills with `bash benchmarks/device.sh prepare-data DIR` just for the carry and
# empties afterwards; never committed).
#
#   device tool, third call:  run(command="bash benchmarks/device.sh convergence", carry=[".whl", ".data"],
#                                 timeout_s=600)
#
# `convergence` runs ntk_convergence's paper preset (finite ensembles against the NTK at the
# widths a CPU cannot reach) for at most 8 minutes and brings its run directory back.
set -uo pipefail
cd "$(dirname "$0")/.."

device_env() {   # $OUT, the carried wheels installed into /tmp/site, the repository on PYTHONPATH
    OUT="${OUT:-/tmp/ntkequi-device}"
    mkdir -p "$OUT"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl || { echo "no wheels: run 'bash benchmarks/device.sh prepare' here and carry .whl"; exit 2; }
    export OUT PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
}

case "${1:-}" in
prepare)
    grep -qxF "/.whl/" .git/info/exclude 2>/dev/null || echo "/.whl/" >> .git/info/exclude
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
        neural-tangents==0.6.5 frozendict==2.5.1 && ls -l .whl
    ;;
run)
    device_env
    python3 - <<'PY' 2>&1 | tee "$OUT/versions.txt"
import importlib.metadata as md, sys
import ntkequi                     # applies the compatibility fixes before neural-tangents is imported
from ntkequi.nt import nt          # noqa: F401  (fails here if the fixes do not hold on this JAX)
import jax
print("python", sys.version.split()[0], *(f"{p} {md.version(p)}" for p in
      ("jax", "jaxlib", "flax", "optax", "numpy", "scipy", "neural-tangents")))
print("devices", jax.devices())
PY
    # core tests on the GPU (jax default backend), serially (addopts cleared: no xdist workers
    # sharing the GPU);
    # data tests skip without NTKEQUI_DATA_DIR
    # SIGINT at the time limit: pytest stops and still prints its summary of what ran
    timeout -s INT -k 20 200 python3 -m pytest -q -p no:cacheprovider -o addopts="" -m "not slow" \
        tests/test_compat.py tests/test_ntk.py tests/test_structured.py tests/test_ensembles.py \
        tests/test_kernels.py tests/test_cross_product.py 2>&1 | tee "$OUT/tests.log"
    label="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)"
    # --quick first (smaller sizes: a result even if the full run is cut), then the full sizes
    timeout 110 python3 benchmarks/run.py --quick --label "${label:-accelerator}" --out "$OUT/RESULTS-quick.md" \
        2>&1 | tee "$OUT/bench-quick.log"
    timeout 240 python3 benchmarks/run.py --label "${label:-accelerator}" --out "$OUT/RESULTS.md" 2>&1 \
        | tee "$OUT/bench.log"
    ;;
prepare-data)
    grep -qxF "/.data/" .git/info/exclude 2>/dev/null || echo "/.data/" >> .git/info/exclude
    src="${2:?usage: device.sh prepare-data DIR (the folder holding fashion-mnist/ and mnist/)}"
    mkdir -p .data && cp -r "$src/fashion-mnist" "$src/mnist" .data/ && du -sh .data   # about 41 MB
    ;;
paper)
    device_env
    mkdir -p "$OUT/fmnist_osp_table-paper"
    export NTKEQUI_DATA_DIR="${NTKEQUI_DATA_DIR:-$PWD/.data}"
    ls "$NTKEQUI_DATA_DIR"/fashion-mnist/train-images-idx3-ubyte.gz >/dev/null || {
        echo "no data in $NTKEQUI_DATA_DIR: run 'bash benchmarks/device.sh prepare-data DIR' here and carry .data"; exit 2; }
    run=/tmp/fmnist_osp_table-paper              # checkpoints stay on the device
    timeout -s INT -k 30 480 python3 -m ntkequi run fmnist_osp_table --preset paper --out "$run" --no-progress \
        2>&1 | tee "$OUT/fmnist_osp_table-paper/log.txt"
    cp "$run"/config.json "$run"/versions.json "$run"/results.jsonl "$OUT/fmnist_osp_table-paper/" 2>/dev/null
    nvidia-smi --query-gpu=name --format=csv,noheader > "$OUT/fmnist_osp_table-paper/device.txt" 2>/dev/null
    ;;
convergence)
    # ntk_convergence's paper preset for at most 8 minutes: its toy and Ising units first (no
    # data needed for those), every finished unit a set of records; the run directory's small
    # files and per-member predictions come back in $OUT/ntk_convergence-paper for resumption
    device_env
    export NTKEQUI_DATA_DIR="${NTKEQUI_DATA_DIR:-$PWD/.data}"
    run="$OUT/ntk_convergence-paper"
    timeout -s INT -k 30 480 python3 -m ntkequi run ntk_convergence --preset paper --out "$run" --no-progress \
        2>&1 | tee "$OUT/ntk_convergence-paper.log"
    rm -f "$run"/ensembles/*/checkpoint.msgpack        # the state is large; records and predictions suffice
    nvidia-smi --query-gpu=name --format=csv,noheader > "$OUT/ntk_convergence-device.txt" 2>/dev/null
    ;;
*)
    echo "usage: bash benchmarks/device.sh prepare|run|prepare-data DIR|paper|convergence" >&2
    exit 2
    ;;
esac
