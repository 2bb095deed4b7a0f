"""The background warm-up (issue #20 item 2): the compiled kernels load in a daemon thread from the
package's import on; a fit that starts meanwhile waits for and reuses them, and threads, os.fork(),
loky workers and the interpreter's exit all keep working. Each case runs in a fresh process on its
own kernel cache."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("numba")

_FIT = """
import json, os, sys, threading, time, warnings
import numpy as np
warnings.simplefilter("ignore")
import sklearn_snn
from sklearn_snn import SurrogateSNNClassifier, warmup
from sklearn_snn._core import numba_backend as nbk
rng = np.random.default_rng(0)
y = np.arange(48) % 3
X3 = (rng.random((48, 10, 60)) < 0.15 + 0.1 * (np.arange(60) % 3 == y[:, None, None])).astype(np.float32)
X2 = rng.random((48, 5)) + y[:, None]

def fit():
    a = SurrogateSNNClassifier(hidden_layer_sizes=(64,), max_iter=2, random_state=0).fit(X3, y)
    b = SurrogateSNNClassifier(hidden_layer_sizes=(16,), max_iter=2, random_state=0).fit(X2, y)
    return np.concatenate([a.predict_proba(X3).ravel(), b.predict_proba(X2).ravel()]).round(5).tolist()

def stats():
    nb = nbk.numba_kernels()
    fns = [f for ns in (nb.par, nb.ser, nb.helpers) for f in vars(ns).values()]
    fns += [getattr(m, n) for m in nbk._MODULES.values() for n in nbk.SCAN_KERNEL_NAMES if hasattr(m, n)]
    fns = [f for f in fns if hasattr(f, "stats")]
    return (sum(sum(f.stats.cache_hits.values()) for f in fns), sum(sum(f.stats.cache_misses.values()) for f in fns),
            max([0] + [max(f.stats.cache_hits.values(), default=0) for f in fns]))
"""


def _run(code, cache, env=None, timeout=240):
    full = dict(os.environ, SKLEARN_SNN_KERNEL_CACHE=str(cache / "k"), NUMBA_CACHE_DIR=str(cache / "n"),
                OMP_NUM_THREADS="1")
    full.pop("SKLEARN_SNN_NUMBA", None)
    full.setdefault("SKLEARN_SNN_NUMBA", "1")   # these tiny fits compile (not the small-fit torch rule)
    full.update(env or {})
    out = subprocess.run([sys.executable, "-c", _FIT + textwrap.dedent(code)], env=full, capture_output=True,
                         text=True, timeout=timeout, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def _last_json(out):
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    """A kernel cache filled by one fit (and its warm-up list), with that fit's predictions."""
    cache = tmp_path_factory.mktemp("warm")
    out = _run("print(json.dumps(fit()))", cache, {"SKLEARN_SNN_WARMUP": "0"})
    return cache, _last_json(out)


def test_fit_during_warm_up_reuses_the_loaded_kernels(filled):
    cache, ref = filled
    out = _run("""
        th = warmup.start()
        assert th is not None and th.name == "sklearn-snn-warm-up" and warmup.start() is th
        got = fit()                      # starts while the thread loads
        th.join(60)
        assert not th.is_alive()
        print(json.dumps([got, stats()]))
    """, cache)
    got, (hits, misses, most) = _last_json(out)
    assert got == ref
    # everything came from the disk cache (nothing compiled again), each kernel loaded once
    assert misses == 0 and hits >= 5 and most == 1


def test_the_warm_up_loads_what_the_last_fits_used(filled):
    cache, _ = filled
    out = _run("""
        nbk.warm_up()
        before = stats()
        fit()
        print(json.dumps([before, stats()]))
    """, cache)
    before, after = _last_json(out)
    assert before[0] >= 5 and before[1] == 0
    assert after[:2] == before[:2]       # the fits loaded nothing more


def test_threads_importing_and_warming_at_once(filled):
    cache, ref = filled
    out = _run("""
        res, errs = [], []
        def worker():
            try:
                import sklearn_snn.warmup as w
                res.append(w.start())
                nbk.warm_up()
                nbk.numba_kernels()
            except BaseException as e:
                errs.append(repr(e))
        ts = [threading.Thread(target=worker) for _ in range(4)]
        for t in ts: t.start()
        got = fit()
        for t in ts: t.join(120)
        assert not errs and len(set(map(id, res))) == 1 and not any(t.is_alive() for t in ts), errs
        print(json.dumps(got))
    """, cache)
    assert _last_json(out) == ref


def test_fork_while_warming_up_leaves_a_child_that_fits(filled):
    if not hasattr(os, "fork"):
        pytest.skip("no os.fork on this platform")
    cache, ref = filled
    out = _run("""
        th = warmup.start()              # importing numba, then loading the kernels one by one
        time.sleep(0.3)
        pid = os.fork()
        if pid == 0:
            import signal
            signal.alarm(200)
            try:
                with open(os.path.join(os.environ["SKLEARN_SNN_KERNEL_CACHE"], "child.json"), "w") as f:
                    json.dump(fit(), f)
                os._exit(0)
            except BaseException:
                os._exit(4)
        _, status = os.waitpid(pid, 0)
        print(json.dumps([os.waitstatus_to_exitcode(status), th.is_alive() or True, fit()]))
    """, cache, timeout=400)
    code, _, parent = _last_json(out)
    assert code == 0
    with open(cache / "k" / "child.json") as f:
        assert json.load(f) == ref == parent


def test_switches_and_an_exit_while_the_thread_compiles(tmp_path):
    out = _run("""
        os.environ["SKLEARN_SNN_WARMUP"] = "0"
        a = warmup.start()
        os.environ["SKLEARN_SNN_WARMUP"] = "1"
        os.environ["SKLEARN_SNN_NUMBA"] = "0"
        b = warmup.start()
        print(json.dumps([a is None, b is None, "numba" in sys.modules]))
        del os.environ["SKLEARN_SNN_NUMBA"]
        th = warmup.start()             # an empty cache: importing numba, then compiling; exit meanwhile
        time.sleep(0.2)
    """, tmp_path, {"SKLEARN_SNN_WARMUP": "0"})       # (so that no import-time start comes first)
    assert json.loads(out.stdout.strip().splitlines()[0]) == [True, True, False]
    assert "Traceback" not in out.stderr and "Fatal" not in out.stderr, out.stderr[-2000:]


def test_loky_workers_fit_as_the_main_process(filled):
    cache, _ = filled
    out = _run("""
        from sklearn.model_selection import cross_validate
        est = SurrogateSNNClassifier(hidden_layer_sizes=(64,), max_iter=2, random_state=0)
        one = cross_validate(est, X3, y, cv=2, n_jobs=1)["test_score"].tolist()
        two = cross_validate(est, X3, y, cv=2, n_jobs=2)["test_score"].tolist()
        print(json.dumps([one, two]))
    """, cache, timeout=400)
    one, two = _last_json(out)
    assert one == two


def test_the_list_forgets_what_no_process_uses(filled):
    out = _run("""
        import pickle
        fit()
        nbk.note_kernels()
        path = nbk.warm_list_path()
        with open(path, "rb") as f:
            used = pickle.load(f)
        stale = (("ser",), "leaky", used[0][0][2][:0])       # an entry with no kernel behind it
        with open(path, "wb") as f:
            pickle.dump(used + [(stale, nbk.WARM_AGE)], f)
        n = warmup.load_kernels()
        nbk.WARM_LOADED.add(stale)
        nbk.note_kernels.__globals__["_NOTED"][0] = -1     # as in a new process
        nbk.note_kernels()
        with open(path, "rb") as f:
            after = pickle.load(f)
        print(json.dumps([len(used), n, all(a == 0 for _, a in used), len(after),
                          sorted(a for _, a in after) == [0] * len(used)]))
    """, filled[0], {"SKLEARN_SNN_WARMUP": "0"})
    n_used, n_loaded, fresh, n_after, ages = _last_json(out)
    # this process's own kernels are fresh (age 0), all loaded already; the stale entry is gone
    assert n_used >= 5 and fresh and n_loaded == n_used and n_after == n_used and ages


def test_import_starts_the_warm_up_unless_turned_off(filled):
    cache, ref = filled
    code = """
        th = [t for t in threading.enumerate() if t.name == "sklearn-snn-warm-up"]
        t0 = time.perf_counter()
        got = fit()
        print(json.dumps([len(th), th[0].daemon if th else None, "numba" in sys.modules, got]))
    """
    n, daemon, _, got = _last_json(_run(code, cache, {"SKLEARN_SNN_WARMUP": "1"}))
    assert (n, daemon) == (1, True) and got == ref
    n, daemon, numba_seen, _ = _last_json(_run(code.replace("got = fit()", "got = None"), cache,
                                               {"SKLEARN_SNN_WARMUP": "0"}))
    assert (n, daemon, numba_seen) == (0, None, False)


def test_an_exit_right_after_the_import_is_clean(filled, tmp_path):
    # the thread imports numba and loads kernels (filled cache), or does nothing (empty cache, no
    # numba import), while the interpreter exits: no error either way
    for cache in (filled[0], tmp_path):
        full = dict(os.environ, SKLEARN_SNN_KERNEL_CACHE=str(cache / "k"), NUMBA_CACHE_DIR=str(cache / "n"),
                    OMP_NUM_THREADS="1", SKLEARN_SNN_WARMUP="1")
        full.pop("SKLEARN_SNN_NUMBA", None)
        out = subprocess.run([sys.executable, "-c", "import sklearn_snn; print('ok')"], env=full,
                             capture_output=True, text=True, timeout=120, check=False)
        assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
        assert "Traceback" not in out.stderr and "Fatal" not in out.stderr, out.stderr[-2000:]
    code = "import sys, time, sklearn_snn; time.sleep(1.0); print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=120,
                         check=False)
    assert out.stdout.strip() == "False", out.stderr[-2000:]    # empty cache: numba not imported
