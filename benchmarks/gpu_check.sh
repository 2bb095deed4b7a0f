#!/usr/bin/env bash
# The GPU check of issue 21 in one run: the Triton scan's tests on CUDA (compiled kernels, not the
# interpreter), then the anchor table of `benchmarks/speed.py --device cuda` (time and peak GPU memory).
#
# 1. Here, on a machine with internet access and this repo's venv (once): the wheels of the anchors
#    (snnTorch, Norse, SpikingJelly, nir, nirtorch) and of scikit-learn (the image's may be older than
#    the package needs), which the GPU machine cannot download (it has torch, triton, cupy, numpy,
#    scipy, pandas, numba):
#        bash benchmarks/gpu_check.sh fetch            # -> .whl/ (git-ignored through .git/info/exclude)
# 2. On the GPU machine (the `device` tool of the session; about 15 minutes of device time in all):
#        run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=570)
#    or a part of the table:  bash benchmarks/gpu_check.sh ON S3
#    What lands in $OUT: env.txt, tests.txt, speed_cuda.md (the table for doc/benchmarks.rst).
# Each stage has its own time limit (TEST_S, BENCH_S seconds), so a slow stage cannot eat the rest.
set -uo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "fetch" ]; then
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
    PY=${PYTHON:-.venv/bin/python}
    for pkg in snntorch norse spikingjelly nir nirtorch scikit-learn; do
        ver=$("$PY" -m pip show "$pkg" 2>/dev/null | awk '/^Version:/{print $2}')
        "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
            --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
            --platform any -d .whl "$pkg${ver:+==$ver}" || echo "no wheel for $pkg: its rows will read 'not installed'"
    done
    ls -l .whl
    exit 0
fi

OUT=${OUT:-gpu_check_out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
if ls .whl/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target .whl/site .whl/*.whl \
        && export PYTHONPATH="$PWD/.whl/site"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4
{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    "$PY" -c "import torch, triton, sklearn; print('torch', torch.__version__, 'triton', triton.__version__, \
'sklearn', sklearn.__version__, 'cuda', torch.cuda.is_available())"
    "$PY" -c "from sklearn_snn._core.kernels import select_backend as s; import torch; \
print('auto on CUDA float32 ->', s('scan', 'auto', torch.zeros(2, 1, 3, device='cuda'), None, (0.9, 0.8, 1.0)).__name__)"
} 2>&1 | tee "$OUT/env.txt"

# 1. the kernels against reference_scan on CUDA tensors (conftest.py leaves TRITON_INTERPRET unset there)
timeout "${TEST_S:-150}" "$PY" -m pytest -q -p no:cacheprovider tests/test_triton_backend.py 2>&1 | tee "$OUT/tests.txt"

# 2. the anchor table, the Open Neuromorphic shape first (rows print as they finish: a stage cut short
#    by its limit still leaves the rows it finished)
SHAPES=("$@")
[ ${#SHAPES[@]} -eq 0 ] && SHAPES=(ON S3 S1 S2)
timeout "${BENCH_S:-360}" "$PY" benchmarks/speed.py --device cuda --shapes "${SHAPES[@]}" --steps "${STEPS:-3}" \
    --warmup 2 2>&1 | tee "$OUT/speed_cuda.md"
echo "# reproduce: bash benchmarks/gpu_check.sh ${SHAPES[*]}" | tee -a "$OUT/speed_cuda.md"
