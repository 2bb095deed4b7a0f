"""Issue #19, item 8: epoch time and peak memory of ``SurrogateSNNClassifier.fit`` against the number
of samples, up to SHD's 8,156, on SHD-shaped synthetic event data (700 channels, 1 s recordings
binned into 100 or 250 steps), given as ``float32``, ``bool`` or a ``memmap`` (a bool ``.npy``
file opened with :func:`sklearn_snn.datasets.open_shared_memmap`, read one batch at a time).

The events: every recording holds Poisson spikes at ``--rate`` events per channel per second
(default 20 Hz, i.e. 2% of the 10 ms bins active, as in benchmarks/spike_memory.py), with
random labels of 20 classes (the timing of one epoch does not depend on what is learned). They
are binned by :class:`~sklearn_snn.preprocessing.EventBinner` on one grid (``duration=1.0``) in
chunks of 250 recordings, written straight into the array (or the file) the cell trains on, so
that building the data sets no memory peak of its own.

Each cell (samples x steps x input form) runs in a fresh subprocess, which resets its peak RSS
(``/proc/self/clear_refs``) after building the data and reports the increase of the peak RSS
during ``fit`` (``--epochs`` epochs; seconds per epoch = fit's wall time / ``n_iter_``). For the
memmap form the pages of the file that fit reads count as file-backed RSS (page cache, not a
copy). A cell whose input would exceed ``--max-input-gb`` in memory is skipped (float32 at
8,156 x 250 x 700 is 5.7 GB).

Run (the full table; about an hour on 2 cores, and float32 at 8,156 x 250 needs > 6 GB):
``OMP_NUM_THREADS=1 python benchmarks/scale.py --n-samples 500 2000 4000 8156 --steps 100 250 --max-input-gb 8``.
A quick version: ``OMP_NUM_THREADS=1 python benchmarks/scale.py --n-samples 500 2000 --steps 100``.
"""

import argparse
import json
import subprocess
import sys
import tempfile

N_CHANNELS = 700
FORMS = ("float32", "bool", "memmap")

_CHILD = r"""
import json, os, resource, sys, time, warnings
import numpy as np, torch
n, T, form, epochs, threads, rate, hidden, tmp = (int(sys.argv[1]), int(sys.argv[2]), sys.argv[3],
    int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7]), sys.argv[8])
C = int(sys.argv[9])
torch.set_num_threads(threads)
from sklearn_snn import SurrogateSNNClassifier
from sklearn_snn.datasets import open_shared_memmap
from sklearn_snn.preprocessing import EventBinner

def status(field):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None

rng = np.random.default_rng(0)
binner = EventBinner(n_steps=T, duration=1.0, n_channels=C).fit([np.array([[0.5, 0.0]])])
dtype = np.float32 if form == "float32" else np.bool_
if form == "memmap":
    path = os.path.join(tmp, "X.npy")
    X = np.lib.format.open_memmap(path, mode="w+", dtype=np.bool_, shape=(n, T, C))
else:
    X = np.empty((n, T, C), dtype=dtype)
n_events = 0
for i in range(0, n, 250):                     # SHD-like events, binned chunk by chunk
    m = min(250, n - i)
    counts = rng.poisson(rate * C, m)          # events per recording (1 s)
    t = rng.uniform(0, 1.0, counts.sum())
    ch = rng.integers(0, C, counts.sum())
    ev = np.split(np.stack([t, ch.astype(float)], 1), np.cumsum(counts)[:-1])
    X[i:i + m] = binner.transform(ev) > 0
    n_events += int(counts.sum())
if form == "memmap":
    X.flush()
    del X
    X = open_shared_memmap(path)
    fd = os.open(path, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)   # start from a cold page cache
    os.close(fd)
y = rng.integers(0, 20, n)
clf = SurrogateSNNClassifier(hidden_layer_sizes=(hidden,), max_iter=epochs, random_state=0)
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")                           # resets VmHWM (the peak RSS) to the current RSS
    reset = True
except OSError:
    reset = False
before = status("VmRSS")
t0 = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    clf.fit(X, y)
seconds = time.perf_counter() - t0
peak = status("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"input_mb": X.nbytes / 2**20, "peak_increase_mb": peak - before, "peak_reset": reset,
                  "s_per_epoch": seconds / clf.n_iter_, "events_per_sample": n_events / n,
                  "density": float(np.count_nonzero(X[: min(n, 200)])) / X[: min(n, 200)].size}))
"""


def run_cell(n, steps, form, args):
    flags = ["-P"] if sys.version_info >= (3, 11) else []
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run([sys.executable, *flags, "-c", _CHILD, str(n), str(steps), form, str(args.epochs),
                              str(args.threads), str(args.rate), str(args.hidden), tmp, str(N_CHANNELS)],
                             capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["killed"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-samples", type=int, nargs="+", default=[500, 2000, 4000, 8156])
    ap.add_argument("--steps", type=int, nargs="+", default=[100, 250])
    ap.add_argument("--forms", nargs="+", default=list(FORMS), choices=FORMS)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--rate", type=float, default=20.0, help="events per channel per second (Poisson)")
    ap.add_argument("--max-input-gb", type=float, default=4.0,
                    help="skip in-memory cells whose input is larger (the memmap form is never skipped)")
    args = ap.parse_args()
    print("command: OMP_NUM_THREADS=1 python benchmarks/scale.py " + " ".join(sys.argv[1:]))
    print(f"SurrogateSNNClassifier(hidden_layer_sizes=({args.hidden},)).fit, {args.epochs} epoch(s), "
          f"{args.threads} thread(s); SHD-shaped events: {N_CHANNELS} channels, 1 s, {args.rate:g} Hz Poisson")
    print(f"| {'samples':>7} | {'steps':>5} | {'input':>7} | {'input MB':>9} | {'peak RSS + MB':>13} | "
          f"{'x input':>7} | {'s/epoch':>8} |")
    print(f"|{'-' * 9}|{'-' * 7}|{'-' * 9}|{'-' * 11}|{'-' * 15}|{'-' * 9}|{'-' * 10}|")
    for steps in args.steps:
        for n in args.n_samples:
            for form in args.forms:
                size_gb = n * steps * N_CHANNELS * (4 if form == "float32" else 1) / 2**30
                if form != "memmap" and size_gb > args.max_input_gb:
                    print(f"| {n:>7} | {steps:>5} | {form:>7} | {size_gb * 1024:>9.0f} | "
                          f"{'skipped (> --max-input-gb)':>43} |")
                    continue
                r = run_cell(n, steps, form, args)
                if "error" in r:
                    print(f"| {n:>7} | {steps:>5} | {form:>7} | {size_gb * 1024:>9.0f} | failed: {r['error']}")
                    continue
                print(f"| {n:>7} | {steps:>5} | {form:>7} | {r['input_mb']:>9.0f} | {r['peak_increase_mb']:>13.0f} | "
                      f"{r['peak_increase_mb'] / r['input_mb']:>7.1f} | {r['s_per_epoch']:>8.2f} |", flush=True)


if __name__ == "__main__":
    main()
