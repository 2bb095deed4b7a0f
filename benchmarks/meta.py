"""Meta-learning benchmark: learned time constants, few-shot learning to learn, architecture search.

1. Learned vs fixed time constants on ``make_randman`` with long time scales (spike times spread
   over ``n_steps`` steps, initial time constants much shorter): ``SurrogateSNNClassifier`` with
   ``learn_tau=learn_threshold=False`` and ``True``, same seeds, same split; test accuracy both ways
   and the learned time constants.
2. Few-shot on held-out digit classes: 5-way 5-shot episodes on classes 5..9, meta-training on
   classes 0..4, the same ``--episodes`` test episodes (default 100) for every model, mean and
   95% interval: from scratch with the estimators' defaults; from scratch with the learning rate
   and epoch count tuned on episodes of the *meta-training* classes; logistic regression on the
   inputs; a network pre-trained on classes 0..4 with a new logistic-regression readout on its
   hidden spike counts; ``MetaSNNClassifier`` with first-order MAML and with prototype readouts
   ('protonet'), the latter also meta-trained on instance episodes of the base classes' images
   (``InstanceTaskSampler``: one image per class, random affine distortions as its samples;
   ``--instance-iter`` meta-iterations). Reports the median fit (adaptation) time too.
   Then the same start with ``readout='membrane_mean'`` features and a linear-probe start
   (``readout_init='logistic'``), 20 steps at 1e-3; the last row (the adopted start): the same
   with 6 time steps instead of 8.
2a. ``few_shot_variants``: the instance-episode prototype start varied one thing at a time
   (features, time steps, cosine prototypes, outer schedule, learned neuron parameters, mixed
   class episodes, depth, distortion ranges, flipped images, pixel noise) and its adaptation
   (prototype readout only, readout only, distorted support sets, logistic-regression start,
   an ensemble of four starts), paired against logistic regression on the same episodes.
2b. ``few_shot_distortions``: the 8-step start of 2. meta-trained on instance episodes with further
   distortions (shear, anisotropic zoom, elastic displacement fields, stroke thickness), paired
   against logistic regression on the selection episodes (``--episode-seed``, default 11).
   ``few_shot_network``: the same protocol for estimator parameters of the 8-step start (time steps,
   'cuba' neurons, ``tau_mem``, width, the population encoder: ``NETWORK_CANDIDATES``).
2c. The same on fresh random-manifold spike-timing tasks (``RandmanTaskSampler``, disjoint task
   seeds for meta-training and test), with a 512-unit start whose adaptation (steps, rate) is
   chosen on training tasks, a start meta-trained for soft nearest-neighbour scores whose
   ``fit`` keeps the support features (``prototype_per='sample'``, ``readout_init='nearest'``),
   and non-spiking references: 1- and 3-nearest neighbours on the vectors of spike times,
   1-nearest neighbour on the flattened spike trains.
3. Architecture search on digits: ``SNNArchitectureSearch(cost='synops')``, the Pareto front of
   accuracy vs synaptic operations per sample: table and ``meta_pareto.png``.

Everything is written to ``--out`` (default ``benchmarks/out/``): ``meta.json``, ``meta.md``,
``meta_pareto.png``.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/meta.py --quick
    OMP_NUM_THREADS=1 python benchmarks/meta.py           # longer training, more trials
    OMP_NUM_THREADS=1 python benchmarks/meta.py --only few_shot --episodes 100
    OMP_NUM_THREADS=1 python benchmarks/meta.py --only few_shot_variants --episodes 100
    OMP_NUM_THREADS=1 python benchmarks/meta.py --only few_shot_distortions --episodes 100
    OMP_NUM_THREADS=1 python benchmarks/meta.py --only few_shot_network --episodes 100
    OMP_NUM_THREADS=1 python benchmarks/meta.py --only randman --quick --episodes 100
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from sklearn_snn import SurrogateSNNClassifier
from sklearn_snn.datasets import make_randman
from sklearn_snn.meta import (
    FewShotTaskSampler,
    MetaSNNClassifier,
    SNNArchitectureSearch,
    synaptic_operations,
)
from sklearn_snn.tasks import InstanceTaskSampler, RandmanTaskSampler

INSTANCE_META_ITER = 3000


def ci95(values):
    v = np.asarray(values, dtype=float)
    half = 1.96 * v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else float("nan")
    return float(v.mean()), float(half)


def learned_tau(quick, seed=0):
    n_steps = 100
    X, y = make_randman(n_samples=600 if quick else 1500, n_classes=5, n_units=20, n_steps=n_steps,
                        dim_manifold=1, alpha=2.0, random_state=seed)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)
    out = {"n_steps": n_steps, "n_train": len(ytr), "n_test": len(yte)}
    for learn in (False, True):
        clf = SurrogateSNNClassifier(hidden_layer_sizes=(64,), neuron="cuba", tau_mem=3.0, tau_syn=1.5,
                                     readout="membrane_max", learning_rate_init=5e-3, batch_size=64,
                                     max_iter=30 if quick else 80, learn_tau=learn, learn_threshold=learn,
                                     random_state=seed)
        t0 = time.perf_counter()
        clf.fit(Xtr, ytr)
        key = "learned" if learn else "fixed"
        out[key] = {"test_accuracy": float(clf.score(Xte, yte)), "train_accuracy": float(clf.score(Xtr, ytr)),
                    "fit_s": time.perf_counter() - t0}
        if learn:
            p = clf.learned_neuron_parameters()[0]
            out[key]["tau_mem_median"] = float(np.median(p["tau_mem"]))
            out[key]["tau_mem_range"] = [float(p["tau_mem"].min()), float(p["tau_mem"].max())]
            out[key]["tau_syn_median"] = float(np.median(p["tau_syn"]))
            out[key]["threshold_median"] = float(np.median(p["threshold"]))
            out[key]["readout_tau_median"] = float(np.median(clf.learned_neuron_parameters()[-1]["tau_mem"]))
        print(f"[tau] {key}: test accuracy {out[key]['test_accuracy']:.3f} ({out[key]['fit_s']:.0f}s)", flush=True)
    return out


def _score_all(make, episodes, flat=False):
    """Query accuracies and fit times (s) of ``make().fit(support)`` over the episodes."""
    acc, times = [], []
    for ep in episodes:
        Xs, Xq = ep.X_support, ep.X_query
        if flat:
            Xs, Xq = Xs.reshape(len(Xs), -1), Xq.reshape(len(Xq), -1)
        est = make()
        t0 = time.perf_counter()
        est.fit(Xs, ep.y_support)
        times.append(time.perf_counter() - t0)
        acc.append(est.score(Xq, ep.y_query))
    return acc, times


def _tuned_scratch(kw, tune_episodes, lrs=(2e-3, 5e-3, 1e-2, 2e-2), epochs=(10, 30, 100)):
    """The learning rate and epoch count of a from-scratch fit with the best mean query accuracy
    on episodes of the meta-training classes (never the test classes)."""
    best, best_acc = None, -1.0
    for lr in lrs:
        for n in epochs:
            acc, _ = _score_all(lambda lr=lr, n=n: MetaSNNClassifier(**{**kw, "learning_rate_init": lr, "max_iter": n}),
                                tune_episodes)
            if np.mean(acc) > best_acc:
                best, best_acc = {"learning_rate_init": lr, "max_iter": n}, float(np.mean(acc))
    return best, best_acc


class _PretrainedReadout:
    """A network pre-trained on the base classes; a new readout (logistic regression on the last
    hidden layer's decayed spike counts) is fitted on each support set."""

    def __init__(self, net):
        self.net = net

    def _features(self, X):
        import torch

        from sklearn_snn._core.meta_proto import readout_features

        with torch.no_grad():
            x = self.net._encode(self.net._to_tensor(self.net._scale(np.asarray(X))), train=False)
            return readout_features(self.net.module_, x)[0].numpy()

    def fit(self, X, y):
        self.lr = LogisticRegression(max_iter=2000).fit(self._features(X), y)
        return self

    def score(self, X, y):
        return self.lr.score(self._features(X), y)


def few_shot(quick, seed=0, n_episodes=100, n_meta_iter=None, instance_meta_iter=INSTANCE_META_ITER,
             episode_seed=None):
    """5-way 5-shot on digit classes 5-9 held out from meta-training (0-4): meta-learned starts
    against honest baselines on the same episodes (``episode_seed``, default ``seed + 1``; 11 gives
    the selection episodes on which the choices were made)."""
    n_meta_iter = n_meta_iter or (300 if quick else 1000)
    train = FewShotTaskSampler(5, 5, 15, classes=range(5), random_state=seed)
    test = FewShotTaskSampler(5, 5, 15, classes=range(5, 10))
    episodes = test.episodes(n_episodes, random_state=seed + 1 if episode_seed is None else episode_seed)
    tune_episodes = train.episodes(10 if quick else 20, random_state=seed + 2)
    kw = {"hidden_layer_sizes": (64,), "n_steps": 8, "random_state": seed}
    acc, cost, notes = {}, {}, {}

    def record(name, make, flat=False):
        a, t = _score_all(make, episodes, flat)
        acc[name], cost[name] = a, float(np.median(t))
        m, h = ci95(a)
        print(f"[few-shot] {name}: {m:.3f} +- {h:.3f} (fit {1e3 * cost[name]:.1f} ms)", flush=True)

    record("scratch_defaults", lambda: MetaSNNClassifier(random_state=seed))
    record("surrogate_defaults", lambda: SurrogateSNNClassifier(random_state=seed))
    best, best_acc = _tuned_scratch(kw, tune_episodes)
    notes["scratch_tuned"] = {**best, "tuning_accuracy_on_meta_train_classes": best_acc}
    record("scratch_tuned", lambda: MetaSNNClassifier(**kw, **best))
    record("logistic_regression", lambda: LogisticRegression(max_iter=2000))
    X, y = load_digits(return_X_y=True)
    base = y < 5
    net = SurrogateSNNClassifier(**kw, neuron="lif", tau_mem=10.0, tau_syn=5.0, readout="membrane_max",
                                 max_iter=30).fit(X[base], y[base])
    record("pretrained_new_readout", lambda: _PretrainedReadout(net))
    # protonet: few meta-iterations. With only 5 base classes the prototype embedding overfits
    # them: held-out accuracy after 20 adaptation steps fell with meta-training (256 hidden, 20
    # episodes: 0.894 after 1 meta-iteration, 0.890 after 10, 0.877 after 30, 0.864 after 100)
    metas = {
        "meta_fomaml": {"meta_algorithm": "fomaml", "learning_rate_init": 2e-3, "n_adapt_steps": 10, "meta_lr": 3e-3,
                            "n_meta_iter": n_meta_iter},
        "meta_protonet": {"meta_algorithm": "protonet", "hidden_layer_sizes": (256,), "learning_rate_init": 2e-3,
                              "n_adapt_steps": 20, "meta_lr": 3e-3, "readout": "membrane_max", "n_meta_iter": 10},
    }
    # protonet on instance episodes (UMTRA-style): every class one base-class image, its samples
    # random affine distortions; 20-way training episodes
    metas["meta_protonet_instances"] = dict(metas["meta_protonet"], n_meta_iter=instance_meta_iter)
    # the same with features that weigh earlier spikes more (readout 'membrane_mean') and a
    # linear-probe start: logistic regression on the support set's readout features, then 20
    # steps at 1e-3 (chosen on other held-out episodes, see few_shot_variants)
    metas["meta_protonet_instances_linear"] = dict(metas["meta_protonet_instances"], readout="membrane_mean",
                                                   readout_init="logistic", learning_rate_init=1e-3)
    # the adopted start: the same with 6 time steps instead of 8 (chosen among six network
    # candidates on the selection episodes, part few_shot_network); the 8-step start stays a row
    metas["meta_protonet_instances_linear_6_steps"] = dict(metas["meta_protonet_instances_linear"], n_steps=6)
    samplers = {name: InstanceTaskSampler(X[base], n_way=20, k_shot=5, n_query=5, random_state=seed)
                for name in ("meta_protonet_instances", "meta_protonet_instances_linear",
                             "meta_protonet_instances_linear_6_steps")}
    for name, extra in metas.items():
        meta = MetaSNNClassifier(**{**kw, **extra})
        t0 = time.perf_counter()
        meta.meta_fit(samplers.get(name, train))
        notes[name] = {**extra, "n_meta_iter": meta.n_meta_iter_, "meta_s": time.perf_counter() - t0,
                       "hidden_layer_sizes": list(meta.hidden_layer_sizes), "n_steps": meta.n_steps}
        record(name, lambda meta=meta: meta)
    res = {k: dict(zip(("mean", "ci95"), ci95(v))) for k, v in acc.items()}
    ref = max(("scratch_tuned", "logistic_regression"), key=lambda k: res[k]["mean"])
    best_meta = max((k for k in acc if k.startswith("meta_")), key=lambda k: res[k]["mean"])
    diff = np.asarray(acc[best_meta]) - np.asarray(acc[ref])
    out = {"episodes": n_episodes, "n_way": 5, "k_shot": 5, "n_query": 15, "meta_classes": [0, 1, 2, 3, 4],
           "test_classes": [5, 6, 7, 8, 9], "settings": kw, "accuracy": res, "fit_s_median": cost,
           "notes": notes, "reference": ref, "best_meta": best_meta,
           "gain_points": dict(zip(("mean", "ci95"), [100 * x for x in ci95(diff)]))}
    print(f"[few-shot] {best_meta} vs {ref}: {out['gain_points']['mean']:+.1f} +- {out['gain_points']['ci95']:.1f} "
          "points (paired)", flush=True)
    return out


def _mixed(a, b, p_b, seed=0):
    """Episodes of ``a`` with probability 1 - p_b, else of ``b``."""
    rng, ia, ib = np.random.RandomState(seed), iter(a), iter(b)
    while True:
        yield next(ib) if rng.rand() < p_b else next(ia)


def _noisy(tasks, sigma, seed=0):
    """``tasks`` with Gaussian pixel noise (clipped at 0) on support and query."""
    from sklearn_snn.tasks import Episode

    rng = np.random.RandomState(seed)
    for e in tasks:
        noise = lambda X: np.clip(X + rng.normal(0, sigma, X.shape), 0, None)
        yield Episode(noise(e.X_support), e.y_support, noise(e.X_query), e.y_query, e.classes)


def _dihedral(X):
    """The 8 flips / transposes of 8x8 images (rows of ``X``), stacked."""
    im = X.reshape(-1, 8, 8)
    views = [im, im.transpose(0, 2, 1)]
    views = [w for v in views for w in (v, v[:, ::-1], v[:, :, ::-1], v[:, ::-1, ::-1])]
    return np.concatenate([v.reshape(len(im), 64) for v in views])


def _augmented_fit(meta, n_copies, rotation, scale, shift):
    """``meta.fit`` on the support set plus ``n_copies`` random affine distortions of each image."""
    from sklearn_snn.tasks import random_affine

    class Augmented:
        def fit(self, X, y):
            rep = np.repeat(X, n_copies, axis=0).reshape(-1, 8, 8)
            aug = random_affine(rep, rotation, scale, shift, random_state=0).reshape(len(rep), -1)
            self.est = meta.fit(np.concatenate([X, aug]), np.concatenate([y, np.repeat(y, n_copies)]))
            return self

        def score(self, X, y):
            return self.est.score(X, y)

    return Augmented


# Optional distortions of the instance episodes (``InstanceTaskSampler``: shear, anisotropic zoom,
# elastic displacement fields, stroke thickness), compared for the adopted start of few_shot on
# the selection episodes (``--episode-seed 11``), at most six candidates besides the base
DISTORTION_CANDIDATES = {   # name: InstanceTaskSampler distortions on top of (or instead of) the base ones
    "base": {},                                                   # 25 deg, 20% zoom, 1.5 px
    "shear_stretch": {"shear": 15, "stretch": 0.15},              # + shear 15 deg, anisotropic zoom 15%
    "elastic": {"elastic": 1.0},                                  # + elastic field up to 1 px (sigma 1 px)
    "thickness": {"thickness": 0.5},                              # + blend with dilation / erosion up to 50%
    "all": {"shear": 15, "stretch": 0.15, "elastic": 1.0, "thickness": 0.5},
    "milder_affine_all": {"rotation": 15, "scale": 0.12, "shift": 1.0, "shear": 15, "stretch": 0.15,
                          "elastic": 0.5, "thickness": 0.3},      # 15 deg, 12%, 1 px + smaller new ones
    "thickness_25": {"thickness": 0.25},                          # + thickness up to 25%
}

# Network candidates (``few_shot_network``): the 8-step start of few_shot with one estimator
# parameter changed (base distortions; 'steps_6' became the adopted start), compared by the same
# protocol: at most six candidates on the selection episodes (``--episode-seed 11``,
# ``--meta-seed 0``), the best one once on the benchmark's episodes (``--episode-seed 1``), then a
# second meta-training seed for base and it
NETWORK_CANDIDATES = {      # name: MetaSNNClassifier parameters on top of the 8-step start
    "base": {},                                                   # 256 lif, 8 steps, tau_mem 10, threshold 1
    "steps_4": {"n_steps": 4},
    "steps_6": {"n_steps": 6},
    "cuba": {"neuron": "cuba"},                                   # current-based synapse, tau_syn 5
    "tau_mem_20": {"tau_mem": 20.0},
    "hidden_384": {"hidden_layer_sizes": (384,)},
    "population": {"encoder": "population"},                      # 8 Gaussian receptive fields per pixel
}


def few_shot_distortions(quick, seed=0, n_episodes=100, episode_seed=11, instance_meta_iter=INSTANCE_META_ITER,
                         candidates=None, space="distortions"):
    """The 8-step start of :func:`few_shot` (instance episodes, ``membrane_mean`` features, the
    logistic start, 20 steps at 1e-3) meta-trained on instance episodes with other distortions
    (``space='distortions'``: ``DISTORTION_CANDIDATES``) or with other estimator parameters
    (``space='network'``: ``NETWORK_CANDIDATES``), paired against logistic regression on the pixels
    on the held-out episodes of ``episode_seed`` (11: the selection episodes, not the benchmark's)."""
    table = NETWORK_CANDIDATES if space == "network" else DISTORTION_CANDIDATES
    X, y = load_digits(return_X_y=True)
    base = y < 5
    episodes = FewShotTaskSampler(5, 5, 15, classes=range(5, 10)).episodes(n_episodes, random_state=episode_seed)
    iters = instance_meta_iter if not quick else instance_meta_iter // 3
    kw = {"hidden_layer_sizes": (256,), "n_steps": 8, "random_state": seed, "meta_algorithm": "protonet",
          "learning_rate_init": 1e-3, "n_adapt_steps": 20, "meta_lr": 3e-3, "readout": "membrane_mean",
          "readout_init": "logistic", "n_meta_iter": iters}
    lr = np.array([LogisticRegression(max_iter=2000).fit(e.X_support, e.y_support).score(e.X_query, e.y_query)
                   for e in episodes])
    rows = {}
    for name in candidates or table:
        distortions = table[name] if space == "distortions" else {}
        params = table[name] if space == "network" else {}
        meta = MetaSNNClassifier(**{**kw, **params})
        t0 = time.perf_counter()
        meta.meta_fit(InstanceTaskSampler(X[base], n_way=20, k_shot=5, n_query=5, random_state=seed, **distortions))
        meta_s = time.perf_counter() - t0
        a, t = _score_all(lambda meta=meta: meta, episodes)
        m, h = ci95(a)
        d, dh = ci95(np.asarray(a) - lr)
        rows[name] = {"distortions": distortions,
                      "params": {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()},
                      "accuracy": list(a), "mean": m, "ci95": h, "vs_logistic_points": 100 * d,
                      "vs_logistic_ci95": 100 * dh, "fit_ms": 1e3 * float(np.median(t)), "meta_s": meta_s,
                      "final_meta_loss": float(np.mean(meta.meta_loss_curve_[-100:]))}
        print(f"[{space}] {name}: {m:.3f} +- {h:.3f}, vs logistic regression {100 * d:+.1f} +- {100 * dh:.1f} "
              f"(final meta loss {rows[name]['final_meta_loss']:.2f}, meta-training {meta_s:.0f} s)", flush=True)
    if "base" in rows:   # paired against the base candidate of the same run
        for name, r in rows.items():
            d, dh = ci95(np.asarray(r["accuracy"]) - np.asarray(rows["base"]["accuracy"]))
            r["vs_base_points"], r["vs_base_ci95"] = 100 * d, 100 * dh
            if name != "base":
                print(f"[{space}] {name} vs base: {100 * d:+.1f} +- {100 * dh:.1f} points (paired; better on "
                      f"{int(np.sum(np.asarray(r['accuracy']) > rows['base']['accuracy']))} episodes, worse on "
                      f"{int(np.sum(np.asarray(r['accuracy']) < rows['base']['accuracy']))})", flush=True)
    return {"episodes": n_episodes, "episode_seed": episode_seed, "meta_seed": seed, "meta_iter": iters,
            "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in kw.items()},
            "logistic_regression": ci95(lr), "candidates": rows}


def few_shot_variants(quick, seed=0, n_episodes=100, instance_meta_iter=INSTANCE_META_ITER):
    """Variants of the prototype start meta-trained on instance episodes (digits 0-4 images),
    paired against logistic regression on the same held-out episodes (classes 5-9) as
    :func:`few_shot`: what the embedding, the meta-training and the adaptation each change."""
    X, y = load_digits(return_X_y=True)
    base = y < 5
    episodes = FewShotTaskSampler(5, 5, 15, classes=range(5, 10)).episodes(n_episodes, random_state=seed + 1)
    iters = instance_meta_iter if not quick else instance_meta_iter // 3
    kw = {"hidden_layer_sizes": (256,), "n_steps": 8, "random_state": seed, "meta_algorithm": "protonet",
          "learning_rate_init": 2e-3, "n_adapt_steps": 20, "meta_lr": 3e-3, "readout": "membrane_max",
          "n_meta_iter": iters}
    inst = {"n_way": 20, "k_shot": 5, "n_query": 5, "random_state": seed}
    classes = FewShotTaskSampler(5, 5, 15, classes=range(5), random_state=seed)
    variants = {   # name: (estimator parameters, task stream)
        "base (as few_shot)": ({}, lambda: InstanceTaskSampler(X[base], **inst)),
        "readout membrane_mean (earlier spikes weigh more)": ({"readout": "membrane_mean"}, None),
        "16 time steps": ({"n_steps": 16}, None),
        "cosine prototypes, learned temperature": ({"prototype_metric": "cosine"}, None),
        "meta_lr 5e-3, cosine schedule": ({"meta_lr": 5e-3, "meta_lr_schedule": "cosine"}, None),
        "learned tau and threshold": ({"learn_tau": True, "learn_threshold": True}, None),
        "25% class episodes (0-4) mixed in": ({}, lambda: _mixed(InstanceTaskSampler(X[base], **inst), classes, 0.25)),
        "two hidden layers (256, 256)": ({"hidden_layer_sizes": (256, 256)}, None),
        "smaller distortions (15 deg, 12%, 1 px)": (
            {}, lambda: InstanceTaskSampler(X[base], rotation=15, scale=0.12, shift=1.0, **inst)),
        "flipped / transposed images as more instances": ({}, lambda: InstanceTaskSampler(_dihedral(X[base]), **inst)),
        "pixel noise (sd 2 of 16) on the episodes": ({}, lambda: _noisy(InstanceTaskSampler(X[base], **inst), 2.0)),
    }
    lr = np.array([LogisticRegression(max_iter=2000).fit(e.X_support, e.y_support).score(e.X_query, e.y_query)
                   for e in episodes])
    rows, fitted = {}, {}

    def record(name, make, extra=None):
        a, t = _score_all(make, episodes)
        m, h = ci95(a)
        d, dh = ci95(np.asarray(a) - lr)
        rows[name] = {"mean": m, "ci95": h, "vs_logistic_points": 100 * d, "vs_logistic_ci95": 100 * dh,
                      "fit_ms": 1e3 * float(np.median(t)), **(extra or {})}
        print(f"[variants] {name}: {m:.3f} +- {h:.3f}, vs logistic regression {100 * d:+.1f} +- {100 * dh:.1f} "
              f"(fit {1e3 * np.median(t):.0f} ms)", flush=True)

    for name, (params, tasks) in variants.items():
        meta = MetaSNNClassifier(**{**kw, **params})
        t0 = time.perf_counter()
        meta.meta_fit((tasks or variants["base (as few_shot)"][1])())
        fitted[name] = meta
        record(name, lambda meta=meta: meta, {"meta_s": time.perf_counter() - t0,
                                              "final_meta_loss": float(np.mean(meta.meta_loss_curve_[-100:]))})
    ref = fitted["base (as few_shot)"]
    # adaptation variants of the base start
    record("adaptation: prototype readout only (1 step at lr 1e-12)",
           lambda: ref.set_params(n_adapt_steps=1, learning_rate_init=1e-12))
    ref.set_params(n_adapt_steps=20, learning_rate_init=2e-3)
    record("adaptation: readout only (ANIL), 50 steps at 1e-2",
           lambda: ref.set_params(adapt_layers="readout", n_adapt_steps=50, learning_rate_init=1e-2))
    ref.set_params(adapt_layers="all", n_adapt_steps=20, learning_rate_init=2e-3)
    record("adaptation: support set + 4 distortions of each image (10 deg, 10%, 0.5 px)",
           _augmented_fit(ref, 4, 10.0, 0.1, 0.5))
    for name in ("base (as few_shot)", "readout membrane_mean (earlier spikes weigh more)", "16 time steps"):
        start = fitted[name]
        record(f"{name}: logistic-regression readout start, no step",
               lambda start=start: start.set_params(readout_init="logistic", n_adapt_steps=1, learning_rate_init=1e-12))
        record(f"{name}: logistic-regression readout start + 20 steps at 1e-3",
               lambda start=start: start.set_params(readout_init="logistic", n_adapt_steps=20, learning_rate_init=1e-3))
        start.set_params(readout_init="prototypes", n_adapt_steps=20, learning_rate_init=2e-3)

    class Ensemble:
        """The averaged class probabilities of several fitted meta-learned starts."""

        def __init__(self):
            names = ("base (as few_shot)", "readout membrane_mean (earlier spikes weigh more)",
                     "meta_lr 5e-3, cosine schedule", "25% class episodes (0-4) mixed in")
            self.members = [fitted[k] for k in names]

        def fit(self, X, y):
            self.fitted = [m.fit(X, y) for m in self.members]   # (scored before the next fit)
            return self

        def score(self, X, y):
            p = sum(m.predict_proba(X) for m in self.fitted)
            return float((self.fitted[0].classes_[p.argmax(1)] == y).mean())

    record("ensemble of 4 starts (base, membrane_mean, schedule, mixed)", Ensemble)
    return {"episodes": n_episodes, "meta_iter": iters, "settings": kw, "logistic_regression": ci95(lr),
            "variants": rows}


def few_shot_randman(quick, seed=0, n_episodes=100, n_meta_iter=None):
    """5-way 5-shot on fresh random-manifold spike-timing tasks (a new task per episode)."""
    n_meta_iter = n_meta_iter or (400 if quick else 1500)
    nearest_iter = min(n_meta_iter, 600)
    shape = {"n_units": 20, "n_steps": 30}
    train = RandmanTaskSampler(5, 5, 15, **shape, task_seeds=range(10**6), random_state=seed)
    test = RandmanTaskSampler(5, 5, 15, **shape, task_seeds=range(10**6, 2 * 10**6))  # never drawn in training
    episodes = test.episodes(n_episodes, random_state=seed + 1)
    tune_episodes = train.episodes(10 if quick else 20, random_state=seed + 2)
    kw = {"hidden_layer_sizes": (128,), "neuron": "cuba", "tau_mem": 6.0, "tau_syn": 6.0, "readout": "membrane_mean",
              "random_state": seed}
    acc, cost, notes = {}, {}, {}

    def record(name, make, flat=False):
        a, t = _score_all(make, episodes, flat)
        acc[name], cost[name] = a, float(np.median(t))
        m, h = ci95(a)
        print(f"[randman] {name}: {m:.3f} +- {h:.3f} (fit {1e3 * cost[name]:.1f} ms)", flush=True)

    record("surrogate_defaults", lambda: SurrogateSNNClassifier(random_state=seed))
    best, best_acc = _tuned_scratch(kw, tune_episodes, lrs=(5e-3, 1e-2, 2e-2), epochs=(30, 100))
    notes["scratch_tuned"] = {**best, "tuning_accuracy_on_training_tasks": best_acc}
    record("scratch_tuned", lambda: MetaSNNClassifier(**kw, **best))
    record("logistic_regression", lambda: LogisticRegression(max_iter=2000), flat=True)
    meta = MetaSNNClassifier(**kw, meta_algorithm="protonet", n_meta_iter=n_meta_iter, meta_lr=3e-3,
                             learning_rate_init=5e-3, n_adapt_steps=20)
    t0 = time.perf_counter()
    meta.meta_fit(train)
    notes["meta_protonet"] = {"n_meta_iter": meta.n_meta_iter_, "meta_s": time.perf_counter() - t0, "meta_lr": 3e-3,
                              "n_adapt_steps": 20}
    record("meta_protonet", lambda: meta)
    # a wider embedding (512), its adaptation (steps, rate) chosen on training tasks
    wide = MetaSNNClassifier(**{**kw, "hidden_layer_sizes": (512,)}, meta_algorithm="protonet", n_meta_iter=n_meta_iter,
                             meta_lr=3e-3, learning_rate_init=5e-3, n_adapt_steps=20)
    t0 = time.perf_counter()
    wide.meta_fit(train)
    meta_s = time.perf_counter() - t0
    choice = max(((20, 5e-3), (40, 2e-2), (80, 2e-2)), key=lambda c: np.mean(_score_all(
        lambda c=c: wide.set_params(n_adapt_steps=c[0], learning_rate_init=c[1]), tune_episodes)[0]))
    wide.set_params(n_adapt_steps=choice[0], learning_rate_init=choice[1])
    notes["meta_protonet_512"] = {"n_meta_iter": wide.n_meta_iter_, "meta_s": meta_s, "n_adapt_steps": choice[0],
                                  "learning_rate_init": choice[1], "chosen_on": "training tasks"}
    record("meta_protonet_512", lambda: wide)
    # every support sample its own prototype: meta-trained for soft nearest-neighbour scores of
    # the hidden features, and fit keeps the support set's features (no gradient step). Chosen
    # on 40 other held-out tasks (random_state=11): 0.82 after 200-1500 meta-iterations, against
    # 0.69 for the class-mean loss with the same nearest-neighbour fit
    nearest = MetaSNNClassifier(**kw, meta_algorithm="protonet", prototype_per="sample", readout_init="nearest",
                                n_meta_iter=nearest_iter, meta_lr=3e-3)
    t0 = time.perf_counter()
    nearest.meta_fit(train)
    notes["meta_nearest"] = {"n_meta_iter": nearest.n_meta_iter_, "meta_s": time.perf_counter() - t0,
                             "meta_scale": nearest.meta_scale_, "prototype_per": "sample", "readout_init": "nearest"}
    record("meta_nearest", lambda: nearest)

    class NearestSpikeTimes:
        """Not spiking: k-nearest neighbours on the vectors of the input neurons' spike times
        (``times=True``) or on the flattened spike trains."""

        def __init__(self, k=1, times=True):
            self.k, self.times = k, times

        def _x(self, X):
            return X.argmax(1) if self.times else X.reshape(len(X), -1)

        def fit(self, X, y):
            from sklearn.neighbors import KNeighborsClassifier

            self.knn = KNeighborsClassifier(self.k).fit(self._x(X), y)
            return self

        def score(self, X, y):
            return self.knn.score(self._x(X), y)

    record("nearest_neighbour_spike_times", NearestSpikeTimes)
    record("3_nearest_neighbours_spike_times", lambda: NearestSpikeTimes(3))
    record("nearest_neighbour_flattened_spike_trains", lambda: NearestSpikeTimes(1, times=False))
    res = {k: dict(zip(("mean", "ci95"), ci95(v))) for k, v in acc.items()}
    best = max(("meta_protonet", "meta_protonet_512", "meta_nearest"), key=lambda k: res[k]["mean"])
    diff = np.asarray(acc[best]) - np.asarray(acc["scratch_tuned"])
    diff0 = np.asarray(acc[best]) - np.asarray(acc["surrogate_defaults"])
    diff_nn = np.asarray(acc[best]) - np.asarray(acc["nearest_neighbour_spike_times"])
    print(f"[randman] {best} vs scratch_tuned {100 * ci95(diff)[0]:+.1f} +- {100 * ci95(diff)[1]:.1f}, "
          f"vs surrogate_defaults {100 * ci95(diff0)[0]:+.1f} +- {100 * ci95(diff0)[1]:.1f}, "
          f"vs nearest_neighbour_spike_times {100 * ci95(diff_nn)[0]:+.1f} +- {100 * ci95(diff_nn)[1]:.1f} points",
          flush=True)
    return {"best_meta": best, "gain_over_defaults_points": dict(zip(("mean", "ci95"), [100 * x for x in ci95(diff0)])),
            "episodes": n_episodes, **shape, "settings": kw, "accuracy": res, "fit_s_median": cost, "notes": notes,
            "gain_points": dict(zip(("mean", "ci95"), [100 * x for x in ci95(diff)])),
            "vs_nearest_neighbour_points": dict(zip(("mean", "ci95"), [100 * x for x in ci95(diff_nn)]))}


def architecture_search(quick, out_dir, seed=0):
    X, y = load_digits(return_X_y=True)
    search = SNNArchitectureSearch(SurrogateSNNClassifier(max_iter=15 if quick else 40, learning_rate_init=5e-3,
                                                          random_state=seed),
                                   neurons=("lif", "cuba", "alif"), widths=(16, 32, 64, 128), max_depth=2,
                                   recurrent=(False, True), n_steps=(4, 8, 16), cost="synops",
                                   n_trials=16 if quick else 50, cv=3, random_state=seed)
    t0 = time.perf_counter()
    search.fit(X, y)
    elapsed = time.perf_counter() - t0
    res = search.cv_results_
    rows = [{"trial": int(t), "accuracy": float(s), "synops": float(c), "pareto": bool(p),
             "params": {k: (list(v) if isinstance(v, tuple) else v) for k, v in prm.items()}}
            for t, s, c, p, prm in zip(res["trial_number"], res["mean_test_score"], res["mean_test_cost"],
                                       res["pareto"], res["params"])]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker

        fig, ax = plt.subplots(figsize=(5.5, 4))
        ax.scatter([r["synops"] for r in rows], [r["accuracy"] for r in rows], c="lightgray", label="trials")
        front = sorted((r for r in rows if r["pareto"]), key=lambda r: r["synops"])
        ax.plot([r["synops"] for r in front], [r["accuracy"] for r in front], "o-", color="C3", label="Pareto front")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("synaptic operations per sample")
        ax.set_ylabel("3-fold CV accuracy")
        ax.set_title("SNN architecture search on digits")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / "meta_pareto.png", dpi=120)
        plt.close(fig)
    except ImportError:
        print("matplotlib not installed: no plot")
    print(f"[search] {len(rows)} trials in {elapsed:.0f}s, {sum(r['pareto'] for r in rows)} on the front", flush=True)
    return {"n_trials": len(rows), "search_s": elapsed, "trials": rows,
            "refit_params": {k: (list(v) if isinstance(v, tuple) else v) for k, v in search.best_params_.items()},
            "refit_synops_all_digits": synaptic_operations(search, X)}


def search_vs_grid(quick, seed=0):
    """SNNArchitectureSearch (Optuna, single objective) against a grid search of the same budget
    order over width x neuron x n_steps: best 3-fold CV accuracy, held-out test accuracy, time."""
    from sklearn.model_selection import GridSearchCV

    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)
    base = SurrogateSNNClassifier(max_iter=10 if quick else 30, learning_rate_init=5e-3, random_state=seed)
    grid = {"hidden_layer_sizes": [(32,), (64,), (128,)], "neuron": ["lif", "cuba"], "n_steps": [5, 10]}
    out = {}
    t0 = time.perf_counter()
    gs = GridSearchCV(base, grid, cv=3).fit(Xtr, ytr)
    out["grid"] = {"n_candidates": 12, "best_params": {k: (list(v) if isinstance(v, tuple) else v)
                                                       for k, v in gs.best_params_.items()},
                   "cv": float(gs.best_score_), "test": float(gs.score(Xte, yte)), "time_s": time.perf_counter() - t0}
    t0 = time.perf_counter()
    search = SNNArchitectureSearch(base, neurons=("lif", "cuba", "alif"), widths=(16, 32, 64, 128), max_depth=2,
                                   recurrent=(False, True), n_steps=(5, 10, 20), n_trials=12, cv=3,
                                   random_state=seed).fit(Xtr, ytr)
    out["search"] = {"n_candidates": 12, "best_params": {k: (list(v) if isinstance(v, tuple) else v)
                                                         for k, v in search.best_params_.items()},
                     "cv": float(search.best_score_), "test": float(search.score(Xte, yte)),
                     "time_s": time.perf_counter() - t0}
    for k in ("grid", "search"):
        print(f"[search vs grid] {k}: cv {out[k]['cv']:.3f}, test {out[k]['test']:.3f}, {out[k]['time_s']:.0f}s, "
              f"{out[k]['best_params']}", flush=True)
    return out


def markdown(report):
    t, f, s = report["tau"], report["few_shot"], report["search"]
    lines = ["# Meta-learning benchmark", "",
             f"## Learned vs fixed time constants (make_randman, {t['n_steps']} steps, initial tau_mem 3, tau_syn 1.5)",
             "", "| time constants | test accuracy | train accuracy |", "|---|---|---|"]
    for k in ("fixed", "learned"):
        lines.append(f"| {k} | {t[k]['test_accuracy']:.3f} | {t[k]['train_accuracy']:.3f} |")
    lt = t["learned"]
    lines += ["", (f"Learned hidden tau_mem: median {lt['tau_mem_median']:.1f} steps (range {lt['tau_mem_range'][0]:.1f}"
              f"-{lt['tau_mem_range'][1]:.1f}), tau_syn median {lt['tau_syn_median']:.1f}, threshold median "
              f"{lt['threshold_median']:.2f}, readout tau median {lt['readout_tau_median']:.1f}."), "",
              f"## Few-shot 5-way 5-shot on held-out digit classes 5-9 ({f['episodes']} episodes, 95% intervals)", "",
              "| model | query accuracy | fit (median) |", "|---|---|---|"]
    for k, v in f["accuracy"].items():
        lines.append(f"| {k} | {v['mean']:.3f} +- {v['ci95']:.3f} | {1e3 * f['fit_s_median'][k]:.0f} ms |")
    g = f["gain_points"]
    lines += ["", (f"Tuned scratch: {f['notes']['scratch_tuned']}. Best meta-learned start `{f['best_meta']}` "
              f"against `{f['reference']}`: **{g['mean']:+.1f} +- {g['ci95']:.1f} points** (paired)."), ""]
    r = report["randman"]
    lines += [f"## Few-shot 5-way 5-shot on fresh random-manifold tasks ({r['episodes']} test tasks, 95% intervals)", "",
              "| model | query accuracy | fit (median) |", "|---|---|---|"]
    for k, v in r["accuracy"].items():
        lines.append(f"| {k} | {v['mean']:.3f} +- {v['ci95']:.3f} | {1e3 * r['fit_s_median'][k]:.0f} ms |")
    g = r["gain_points"]
    lines += ["", (f"Tuned scratch: {r['notes']['scratch_tuned']}. {r.get('best_meta', 'meta_protonet')} against "
              "scratch_tuned: "
              f"**{g['mean']:+.1f} +- {g['ci95']:.1f} points** (paired)."
              + (f" Against 1-nearest neighbour on the spike times: {r['vs_nearest_neighbour_points']['mean']:+.1f} "
                 f"+- {r['vs_nearest_neighbour_points']['ci95']:.1f}." if "vs_nearest_neighbour_points" in r else "")),
              "", f"## Architecture search on digits: accuracy vs synaptic operations ({s['n_trials']} trials)", "",
              "| trial | neuron | layers | recurrent | surrogate | n_steps | CV accuracy | synops/sample | Pareto |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(s["trials"], key=lambda r: r["synops"]):
        p = r["params"]
        lines.append(f"| {r['trial']} | {p['neuron']} | {'x'.join(map(str, p['hidden_layer_sizes']))} | "
                     f"{p['recurrent']} | {p['surrogate']} | {p['n_steps']} | {r['accuracy']:.3f} | "
                     f"{r['synops']:.0f} | {'yes' if r['pareto'] else ''} |")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="shorter training, fewer trials")
    ap.add_argument("--out", default=str(Path(__file__).parent / "out"))
    ap.add_argument("--only", choices=["tau", "few_shot", "few_shot_variants", "few_shot_distortions",
                                       "few_shot_network", "randman", "search", "search_vs_grid"], nargs="*")
    ap.add_argument("--episodes", type=int, default=100, help="test episodes of the few-shot parts")
    ap.add_argument("--episode-seed", type=int, default=None, help="seed of the held-out digit episodes of "
                    "few_shot, few_shot_distortions and few_shot_network (default: 1 for few_shot, the benchmark's "
                    "episodes; 11 for the other two, the selection episodes)")
    ap.add_argument("--candidates", nargs="*", choices=sorted({*DISTORTION_CANDIDATES, *NETWORK_CANDIDATES}),
                    default=None, help="few_shot_distortions / few_shot_network: only these candidates (default: all)")
    ap.add_argument("--meta-seed", type=int, default=0, help="few_shot_distortions / few_shot_network: seed of "
                    "meta-training")
    ap.add_argument("--meta-iter", type=int, default=None, help="meta-iterations (default: 300/1000 digits, "
                    "400/1500 randman, quick/full)")
    ap.add_argument("--instance-iter", type=int, default=INSTANCE_META_ITER,
                    help="meta-iterations of the prototype start on instance episodes (digits)")
    args = ap.parse_args()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = args.only or ["tau", "few_shot", "randman", "search"]
    warnings.simplefilter("ignore", ConvergenceWarning)
    report = {"quick": args.quick}
    path = out_dir / "meta.json"
    if path.exists() and args.only:
        report.update({k: v for k, v in json.loads(path.read_text()).items() if k not in parts})
    t0 = time.perf_counter()
    if "tau" in parts:
        report["tau"] = learned_tau(args.quick)
    if "few_shot" in parts:
        report["few_shot"] = few_shot(args.quick, n_episodes=args.episodes, n_meta_iter=args.meta_iter,
                                       instance_meta_iter=args.instance_iter, episode_seed=args.episode_seed)
    for part, space, table in (("few_shot_distortions", "distortions", DISTORTION_CANDIDATES),
                               ("few_shot_network", "network", NETWORK_CANDIDATES)):
        if part not in parts:
            continue
        chosen = [c for c in args.candidates if c in table] if args.candidates else None
        if args.candidates and not chosen:
            continue
        report[part] = few_shot_distortions(
            args.quick, seed=args.meta_seed, n_episodes=args.episodes, instance_meta_iter=args.instance_iter,
            episode_seed=11 if args.episode_seed is None else args.episode_seed, candidates=chosen, space=space)
        for name, v in report[part]["candidates"].items():
            print(f"| {name} | {v['mean']:.3f} +- {v['ci95']:.3f} | {v['vs_logistic_points']:+.1f} +- "
                  f"{v['vs_logistic_ci95']:.1f} | {v['final_meta_loss']:.2f} |")
    if "few_shot_variants" in parts:
        report["few_shot_variants"] = few_shot_variants(args.quick, n_episodes=args.episodes,
                                                        instance_meta_iter=args.instance_iter)
    if "few_shot_variants" in parts:
        for name, v in report["few_shot_variants"]["variants"].items():
            print(f"| {name} | {v['mean']:.3f} +- {v['ci95']:.3f} | {v['vs_logistic_points']:+.1f} +- "
                  f"{v['vs_logistic_ci95']:.1f} | {v['fit_ms']:.0f} ms |")
    if "randman" in parts:
        report["randman"] = few_shot_randman(args.quick, n_episodes=args.episodes, n_meta_iter=args.meta_iter)
    if "search" in parts:
        report["search"] = architecture_search(args.quick, out_dir)
    if "search_vs_grid" in parts:
        report["search_vs_grid"] = search_vs_grid(args.quick)
    report["total_s"] = time.perf_counter() - t0
    path.write_text(json.dumps(report, indent=1))
    print("reproduce: OMP_NUM_THREADS=1 python benchmarks/meta.py " + " ".join(__import__("sys").argv[1:]))
    if all(k in report for k in ("tau", "few_shot", "randman", "search")):
        (out_dir / "meta.md").write_text(markdown(report))
        print(markdown(report))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
