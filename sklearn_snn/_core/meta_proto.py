"""Prototype readouts for meta learning (Snell et al. 2017; Triantafillou et al. 2020's Proto-MAML).

A leaky readout ``v_t = beta v_{t-1} + W h_t + b`` over the last hidden layer's spikes ``h`` is
linear in a decayed spike-count feature: ``v_T = W phi + b kappa`` with ``phi = sum_s beta^(T-1-s)
h_s`` and ``kappa = sum_s beta^s`` (the mean over time likewise, with the mean trace). So the
readout that scores a sample by its squared distance to each class mean ("prototype") of
``phi`` on the support set, ``-scale ||phi - c_k||^2`` up to a term equal for all classes, is the
readout with ``W_k = 2 scale c_k`` and ``b_k = -scale ||c_k||^2 / kappa``. Meta-training
(:func:`prototype_loss`) trains the hidden layers so that these readouts classify the query
sets of the training tasks; adaptation starts from the prototype readout
(:func:`init_readout_from_prototypes`) and fine-tunes it for a few steps.

With ``metric='cosine'`` a sample is scored by ``scale cos(phi, c_k)`` instead (a cosine
classifier with a learned temperature, Gidaris & Komodakis 2018; Chen et al. 2019). Dividing by
``||phi||`` does not change which class scores highest, so the readout ``W_k = s c_k / ||c_k||``,
``b_k = 0`` classifies exactly as the cosine prototypes do; ``s`` is ``scale`` over the mean
feature norm of the support set, which keeps the logits at the scale meta-training used.

Two other heads for meta-training: every support sample a prototype of its own, a class scoring
the log-sum-exp of its samples' scores (:func:`nearest_logits`, a soft nearest neighbour), and
a ridge regression of the support labels on the features solved in closed form
(:func:`ridge_logits`, R2-D2, Bertinetto et al. 2019).
"""

from __future__ import annotations

import torch

from .kernels import leaky_integrate


def _readout_beta(module):
    out = module.out
    if getattr(out, "learn_tau", False):
        return float(torch.sigmoid(out.beta_raw.detach()).mean())
    return float(out.beta0)


def readout_features(module, x):
    """``(phi, kappa)``: the readout-linear features of input ``x`` (T, B, F) and the bias factor.

    ``phi`` is (B, H), the decayed spike counts of the last hidden layer as the readout integrates
    them (at the last step, or averaged over steps for ``readout='membrane_mean'``; the maximum
    over time of ``'membrane_max'`` is taken at the last step).

    Examples
    --------
    >>> import torch
    >>> from sklearn_snn._core.network import SNN
    >>> from sklearn_snn._core.neurons import NeuronSpec
    >>> net = SNN(4, (6,), 3, NeuronSpec(), readout="membrane_last", generator=torch.Generator().manual_seed(0))
    >>> phi, kappa = readout_features(net, torch.rand(5, 2, 4))
    >>> phi.shape, round(kappa, 4) == round(sum(net.out.beta0 ** s for s in range(5)), 4)
    (torch.Size([2, 6]), True)
    """
    if module.readout not in ("membrane_max", "membrane_last", "membrane_mean"):
        raise ValueError(f"Prototype readouts need a leaky (membrane) readout, got readout={module.readout!r}; "
                         "use readout='membrane_mean', 'membrane_last' or 'membrane_max'.")
    _, spikes, _, _ = module.run(x)
    h = spikes[len(module.hidden) - 1]
    beta = _readout_beta(module)
    trace = leaky_integrate(h, beta)
    ones = leaky_integrate(torch.ones(h.shape[0], 1, 1, dtype=h.dtype, device=h.device), beta).flatten()
    if module.readout == "membrane_mean":
        return trace.mean(0), float(ones.mean())
    return trace[-1], float(ones[-1])


def prototypes(phi, y, n_way):
    """Class means (n_way, H) of the features ``phi`` (B, H) for labels ``y`` in 0..n_way-1."""
    onehot = torch.nn.functional.one_hot(y, n_way).to(phi.dtype)
    counts = onehot.sum(0).clamp_min(1.0)
    return (onehot.T @ phi) / counts[:, None]


METRICS = ("euclidean", "cosine")


def prototype_logits(phi, protos, scale, metric="euclidean"):
    """``-scale ||phi - c_k||^2`` (or ``scale cos(phi, c_k)``) for every sample and class: (B, n_way).

    Examples
    --------
    >>> import torch
    >>> phi, protos = torch.tensor([[1.0, 0.0]]), torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    >>> prototype_logits(phi, protos, 1.0).tolist(), prototype_logits(phi, protos, 10.0, "cosine").tolist()
    ([[-1.0, -2.0]], [[10.0, 0.0]])
    """
    if metric == "cosine":
        unit = torch.nn.functional.normalize
        return scale * unit(phi, dim=1, eps=1e-6) @ unit(protos, dim=1, eps=1e-6).T
    if metric != "euclidean":
        raise ValueError(f"Unknown prototype metric {metric!r}; use one of {METRICS}.")
    return -scale * torch.cdist(phi, protos).square()


def nearest_logits(phi, phi_support, y_support, n_way, scale, metric="euclidean"):
    """Soft nearest-neighbour scores (B, n_way): every support sample is a prototype of its own,
    and class ``k`` scores ``log sum_{j: y_j = k} exp(-scale ||phi - phi_j||^2)`` (or the cosine
    similarity times ``scale``); for a large ``scale`` the highest is the class of the nearest
    support sample (Frosst et al. 2019's soft nearest neighbour; Vinyals et al. 2016). A class
    without support samples scores -inf.

    Examples
    --------
    >>> import torch
    >>> phi_s, y_s = torch.tensor([[0.0], [2.0], [3.5]]), torch.tensor([0, 0, 1])
    >>> nearest_logits(torch.tensor([[2.4]]), phi_s, y_s, 2, 100.0).argmax(1).tolist()   # class means: 1
    [0]
    """
    scores = prototype_logits(phi, phi_support, scale, metric)            # (B, S)
    mask = torch.nn.functional.one_hot(y_support, n_way).T.to(torch.bool)   # (n_way, S)
    scores = scores[:, None, :].masked_fill(~mask[None], float("-inf"))     # (B, n_way, S)
    return torch.logsumexp(scores, dim=2)


def ridge_logits(phi, phi_support, y_support, n_way, scale, ridge=1.0):
    """``scale * phi W`` with ``W`` the ridge regression of the support set's one-hot labels on
    its features (Bertinetto et al. 2019's R2-D2 head), solved in the support samples' dual,
    ``W = Phi^T (Phi Phi^T + lambda I)^-1 Y``, with ``lambda = ridge`` times the mean squared
    feature norm (so the head does not depend on the scale of the features); differentiable.

    Examples
    --------
    >>> import torch
    >>> phi_s, y_s = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1])
    >>> ridge_logits(torch.tensor([[2.0, 0.0]]), phi_s, y_s, 2, 1.0).tolist()
    [[1.0, 0.0]]
    """
    y = torch.nn.functional.one_hot(y_support, n_way).to(phi.dtype)
    gram = phi_support @ phi_support.T
    lam = ridge * gram.diagonal().mean().clamp_min(1e-6)
    eye = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
    w = phi_support.T @ torch.linalg.solve(gram + lam * eye, y)
    return scale * (phi @ w)


def prototype_loss(module, x_support, y_support, x_query, y_query, n_way, log_scale, metric="euclidean",
                   per="class"):
    """Cross-entropy of the query set under the support set's prototype readout (differentiable
    in the hidden layers and ``log_scale``); ``per='sample'``: under the soft nearest-neighbour
    scores of :func:`nearest_logits`."""
    phi_s, _ = readout_features(module, x_support)
    phi_q, _ = readout_features(module, x_query)
    if per == "sample":
        logits = nearest_logits(phi_q, phi_s, y_support, n_way, log_scale.exp(), metric)
    elif per == "ridge":
        logits = ridge_logits(phi_q, phi_s, y_support, n_way, log_scale.exp())
    else:
        logits = prototype_logits(phi_q, prototypes(phi_s, y_support, n_way), log_scale.exp(), metric)
    return torch.nn.functional.cross_entropy(logits, y_query)


@torch.no_grad()
def init_readout_from_prototypes(module, x_support, y_support, n_way, scale, chunk=256, metric="euclidean"):
    """Set the readout to the prototype readout of the support set (``W_k = 2 scale c_k``,
    ``b_k = -scale ||c_k||^2 / kappa``; cosine: ``W_k = scale c_k / (||c_k|| mean ||phi||)``,
    ``b_k = 0``); ``x_support`` is (T, B, F), simulated ``chunk`` samples at a time."""
    sums, counts, kappa = None, torch.zeros(n_way, dtype=torch.float64, device=x_support.device), 1.0
    norm_sum = 0.0
    for start in range(0, x_support.shape[1], chunk):
        phi, kappa = readout_features(module, x_support[:, start:start + chunk])
        onehot = torch.nn.functional.one_hot(y_support[start:start + chunk], n_way).to(torch.float64)
        part = onehot.T @ phi.to(torch.float64)
        sums = part if sums is None else sums + part
        counts += onehot.sum(0)
        norm_sum += float(phi.to(torch.float64).norm(dim=1).sum())
    c = sums / counts.clamp_min(1.0)[:, None]
    out = module.out
    if metric == "cosine":
        mean_norm = max(norm_sum / max(x_support.shape[1], 1), 1e-6)
        out.weight.copy_((scale * torch.nn.functional.normalize(c, dim=1, eps=1e-6) / mean_norm).to(out.weight.dtype))
        out.bias.zero_()
        return
    out.weight.copy_((2.0 * scale * c).to(out.weight.dtype))
    out.bias.copy_((-scale * c.square().sum(1) / kappa).to(out.bias.dtype))
