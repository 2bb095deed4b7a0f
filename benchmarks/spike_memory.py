"""Issue #19, item 1 ("input as it comes"): the peak memory and the time per epoch of
``SurrogateSNNClassifier(hidden_layer_sizes=(256,)).fit`` on spike input of SHD's shape
(n_samples x 100 steps x 700 channels, 2% active) given as ``bool`` vs as ``float32``, and (item
2) as a ``memmap``: a bool array saved with ``np.save`` and opened with
``np.load(path, mmap_mode='r')``, which ``fit`` reads one batch at a time.

The memory target of the issue is: peak increase at most the input's own size plus what one
batch needs. The "batch" column is the float32 size of one minibatch of input
(``batch_size='auto'`` = 200 samples), for scale; the activations a batch needs for backward
(hidden states of every step) come on top of it. For the memmap case the pages of the file that
``fit`` reads count in the RSS as file-backed (reclaimable page cache, not copies): at most the
input's size, which the target allows; the anonymous part (``RssAnon``) is printed as well.

Each case runs in a fresh subprocess: the input is built there in chunks (so that building it
sets no peak of its own), the peak RSS is reset (``/proc/self/clear_refs``; on systems without it
the lifetime peak ``ru_maxrss`` is used, which the input itself then bounds from below), and the
increase of the peak RSS over the RSS before ``fit`` is printed with the seconds per epoch
(fit's wall time / ``n_iter_``, so validation and setup are included).

Run: ``OMP_NUM_THREADS=1 python benchmarks/spike_memory.py`` (``--n-samples 2000``,
``--epochs 1``, ``--dtypes bool memmap float32``, ``--threads 1``). To measure another checkout, put it
first on the path: ``PYTHONPATH=/path/to/checkout python benchmarks/spike_memory.py``.
"""

import argparse
import json
import subprocess
import sys
import tempfile

SHAPE = (100, 700)
DENSITY = 0.02

_CHILD = r"""
import json, resource, sys, time, warnings
import numpy as np, torch
n, dtype, epochs, threads = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
SHAPE, DENSITY, tmpdir = json.loads(sys.argv[5]), float(sys.argv[6]), sys.argv[7]
torch.set_num_threads(threads)
from sklearn_snn import SurrogateSNNClassifier

def rss_mb(field):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None

rng = np.random.default_rng(0)
T, F = SHAPE
if dtype == "memmap":                          # written to disk in chunks, then mapped read-only
    path = tmpdir + "/X.npy"
    X = np.lib.format.open_memmap(path, mode="w+", dtype=np.bool_, shape=(n, T, F))
else:
    X = np.empty((n, T, F), dtype=np.bool_)
for i in range(0, n, 50):                      # in chunks: building X sets no peak of its own
    X[i:i + 50] = rng.random((min(50, n - i), T, F), dtype=np.float32) < DENSITY
if dtype == "memmap":
    X.flush()
    del X
    X = np.load(path, mmap_mode="r")
    import os
    os.posix_fadvise(os.open(path, os.O_RDONLY), 0, 0, os.POSIX_FADV_DONTNEED)  # start from a cold cache
elif dtype != "bool":
    X = X.astype(dtype)
y = rng.integers(0, 20, n)
clf = SurrogateSNNClassifier(hidden_layer_sizes=(256,), max_iter=epochs, random_state=0)
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")                           # resets VmHWM (the peak RSS) to the current RSS
    reset = True
except OSError:
    reset = False
before, anon_before = rss_mb("VmRSS"), rss_mb("RssAnon")
t0 = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    clf.fit(X, y)
seconds = time.perf_counter() - t0
anon_after = rss_mb("RssAnon")
peak = rss_mb("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"dtype": dtype, "input_mb": X.nbytes / 2**20, "peak_increase_mb": peak - before,
                  "anon_after_mb": (anon_after or 0) - (anon_before or 0), "memmap": isinstance(X, np.memmap),
                  "s_per_epoch": seconds / clf.n_iter_, "peak_reset": reset,
                  "package": __import__("sklearn_snn").__file__}))
"""


def run_case(n, dtype, epochs, threads):
    # -P: the current directory does not shadow PYTHONPATH (so another checkout can be measured)
    flags = ["-P"] if sys.version_info >= (3, 11) else []
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run([sys.executable, *flags, "-c", _CHILD, str(n), dtype, str(epochs), str(threads),
                              json.dumps(SHAPE), str(DENSITY), tmp],
                             capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-samples", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dtypes", nargs="+", default=["bool", "memmap", "float32"],
                    help="input forms: bool, uint8, float32 (in memory) or memmap (a bool .npy file, mmap_mode='r')")
    args = ap.parse_args()
    batch_mb = min(200, args.n_samples) * SHAPE[0] * SHAPE[1] * 4 / 2**20
    print("command: OMP_NUM_THREADS=1 python benchmarks/spike_memory.py " + " ".join(sys.argv[1:]))
    print(f"SurrogateSNNClassifier(hidden_layer_sizes=(256,)).fit on {args.n_samples} x {SHAPE[0]} x {SHAPE[1]} "
          f"spikes ({DENSITY:.0%} active), {args.epochs} epoch(s), {args.threads} thread(s)")
    for i, dtype in enumerate(args.dtypes):
        r = run_case(args.n_samples, dtype, args.epochs, args.threads)
        if i == 0:
            print(f"  sklearn_snn from {r['package']}")
        print(f"  {dtype:>8}: input {r['input_mb']:8.1f} MB   peak RSS +{r['peak_increase_mb']:8.1f} MB "
              f"({r['peak_increase_mb'] / r['input_mb']:5.1f}x the input; input + one float32 batch = "
              f"{r['input_mb'] + batch_mb:.0f} MB)   anon RSS after fit +{r['anon_after_mb']:7.1f} MB   "
              f"{r['s_per_epoch']:7.2f} s/epoch" + ("" if r["peak_reset"] else "   (lifetime peak: no clear_refs)"))


if __name__ == "__main__":
    main()
