"""Export to and import from NIR, the Neuromorphic Intermediate Representation.

NIR (``pip install nir``, needs numpy and h5py) describes a spiking network as a graph of
continuous-time nodes (``Affine``, ``LIF``, ``CubaLIF``, ``IF``, ``LI``, ``Conv2d``, ...). This
package simulates in discrete steps; ``dt`` (seconds per step) ties the two together. Every node
is written so that its **forward-Euler** step of length ``dt`` is exactly the package's update:

- ``LIF``: ``tau dv/dt = (v_leak - v) + r I`` with ``tau = dt / (1 - beta)``, ``r = 1 / (1 - beta)``
  and ``v_leak = 0``, so ``v <- beta v + I`` per step (``beta = exp(-1 / tau_mem_steps)``).
- ``CubaLIF``: also ``tau_syn = dt / (1 - alpha)``, ``w_in = 1 / (1 - alpha)``.
- ``IF``: ``dv/dt = r I`` with ``r = 1 / dt``. ``LI`` (the leaky readout): as ``LIF``, no spikes.

So ``tau_seconds = dt / (1 - exp(-1 / tau_steps))``, about ``(tau_steps + 0.5) * dt`` (the Euler
time constant, which is what snnTorch and Norse integrate). See ``doc/user_guide/nir.rst``.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

__all__ = ["from_nir", "graph_input", "to_nir"]

_META_KEY = "sklearn_snn"


def _nir():
    try:
        import nir
    except ImportError as exc:  # pragma: no cover - exercised only without nir
        raise ImportError("NIR export/import needs the 'nir' package (and h5py): "
                          "pip install 'sklearn-snn[nir]'.") from exc
    return nir


def _np(t):
    return np.asarray(t.detach().cpu().double().numpy() if torch.is_tensor(t) else t, dtype=np.float64)


def _full(value, n):
    v = _np(value)
    return np.broadcast_to(v, (n,)).copy() if v.ndim == 0 else v.reshape(n).copy()


# ------------------------------------------------------------------------------------ export
def _neuron_node(nir, name, spec, beta, alpha, thr, n, dt):
    """The NIR node whose Euler step of ``dt`` is the package's neuron update (see module doc)."""
    if spec.adaptive:
        raise ValueError(f"Layer {name!r} uses neuron='alif': NIR has no adaptive-threshold neuron. "
                         "Refit with neuron='lif' or 'cuba' to export it.")
    thr = _full(spec.threshold if thr is None else thr, n)
    beta = _full(spec.beta if beta is None else beta, n)
    meta = {"reset": "subtract"} if spec.reset == "subtract" else {}
    if spec.model == "if" or (not spec.uses_synapse and np.all(beta == 1.0)):
        return nir.IF(r=np.full(n, 1.0 / dt), v_threshold=thr, v_reset=np.zeros(n), metadata=meta)
    if np.any(beta >= 1.0):
        raise ValueError(f"Layer {name!r} has neurons with a membrane decay of 1 (infinite tau_mem); NIR's LIF and "
                         "CubaLIF need a finite time constant for every neuron (use neuron='if' for non-leaky ones).")
    tau = dt / (1.0 - beta)
    if not spec.uses_synapse:
        return nir.LIF(tau=tau, r=1.0 / (1.0 - beta), v_leak=np.zeros(n), v_threshold=thr, v_reset=np.zeros(n),
                       metadata=meta)
    alpha = _full(spec.alpha if alpha is None else alpha, n)
    if np.any(alpha >= 1.0):
        raise ValueError(f"Layer {name!r}: a synaptic decay of 1 (tau_syn infinite) has no NIR CubaLIF form; "
                         "use a finite tau_syn.")
    return nir.CubaLIF(tau_syn=dt / (1.0 - alpha), tau_mem=tau, r=1.0 / (1.0 - beta), v_leak=np.zeros(n),
                       v_threshold=thr, v_reset=np.zeros(n), w_in=1.0 / (1.0 - alpha), metadata=meta)


def _input_gain(node):
    """Factor by which a neuron node multiplies its input current (1 after :func:`_unit_r`)."""
    if type(node).__name__ == "CubaLIF":
        return node.w_in * node.r
    return node.r


def _unit_r(node):
    """Set the node's resistance (and ``w_in``) to 1; the caller scales the incoming weights."""
    node.r = np.ones_like(node.r)
    if hasattr(node, "w_in"):
        node.w_in = np.ones_like(node.w_in)


def _snn_graph(nir, est, module, dt, unit_r):
    from ._core.network import SPIKING_READOUTS

    nodes = {"input": None}
    edges = []
    reset_subtract = []
    prev = "input"
    offset = getattr(est, "input_offset_", None)
    scale = getattr(est, "input_scale_", None)
    encoder = getattr(est, "encoder", "current")
    fold = offset is not None and encoder == "current"
    if offset is not None and not fold:
        raise ValueError(f"{type(est).__name__} min-max scales its input before the {encoder!r} encoder, which is "
                         "not a linear map on the graph's input. Refit with input_scaling=None (scale X yourself "
                         "in a Pipeline) to export it; the graph then takes the encoded spike trains.")
    n_layers = len(module.hidden)
    for i, layer in enumerate(list(module.hidden) + [module.out]):
        is_out = i == n_layers
        name = "output_layer" if is_out else f"hidden_{i}"
        if getattr(layer, "norm", None) is not None:
            mode = layer.norm.mode
            raise ValueError(f"Layer {name!r} uses normalization={mode!r} (batch norm through time); NIR cannot "
                             "express it. Refit with normalization=None to export.")
        W, b = _np(layer.weight), _np(layer.bias)
        n = W.shape[0]
        if i == 0 and fold:
            W = W / scale[None, :]
            b = b - W @ offset
        if is_out and module.readout not in SPIKING_READOUTS:
            beta = torch.sigmoid(layer.beta_raw) if layer.learn_tau else layer.beta0
            beta = _full(beta, n)
            if np.all(beta == 1.0):
                neuron = nir.I(r=np.full(n, 1.0 / dt))
            else:
                neuron = nir.LI(tau=dt / (1.0 - beta), r=1.0 / (1.0 - beta), v_leak=np.zeros(n))
        else:
            if layer.spec.adaptive:  # before neuron_params: name the layer in the message
                _neuron_node(nir, name, layer.spec, None, None, None, n, dt)
            beta, alpha, thr = layer.neuron_params()
            neuron = _neuron_node(nir, name, layer.spec, beta, alpha, thr, n, dt)
            if neuron.metadata.get("reset") == "subtract":
                reset_subtract.append(name)
        # the scan adds ``s_prev @ w_rec`` (rows: sending neuron); NIR's Linear is (to, from)
        w_rec = _np(layer.w_rec).T if getattr(layer, "w_rec", None) is not None else None
        if unit_r:
            g = _input_gain(neuron)
            W, b = W * g[:, None], b * g
            if w_rec is not None:
                w_rec = w_rec * g[:, None]
            _unit_r(neuron)
        nodes[f"{name}_affine"] = nir.Affine(weight=W, bias=b)
        nodes[f"{name}_neuron"] = neuron
        edges += [(prev, f"{name}_affine"), (f"{name}_affine", f"{name}_neuron")]
        if w_rec is not None:
            nodes[f"{name}_rec"] = nir.Linear(weight=w_rec)
            edges += [(f"{name}_neuron", f"{name}_rec"), (f"{name}_rec", f"{name}_neuron")]
        prev = f"{name}_neuron"
    n_in = nodes["hidden_0_affine" if n_layers else "output_layer_affine"].weight.shape[1]
    nodes["input"] = nir.Input(input_type=np.array([n_in]))
    nodes["output"] = nir.Output(output_type=np.array([module.out.weight.shape[0]]))
    edges.append((prev, "output"))
    if getattr(est, "input_ndim_", 2) == 3:  # spike trains / currents given per step: used as they are
        kind, n_steps = ("sequence" if encoder != "delta" else "encoded"), est.n_steps_in_
    else:
        kind, n_steps = ("features" if encoder == "current" else "encoded"), est.n_steps
    meta = {"readout": module.readout, "encoder": encoder, "input": kind, "n_steps": int(n_steps)}
    if fold:
        meta["input_offset"], meta["input_scale"] = offset.tolist(), scale.tolist()
        meta["scaling_folded"] = True
    notes = [f"layers {reset_subtract} reset by subtraction (fit with reset='zero' to avoid this)"] \
        if reset_subtract else []
    return nodes, edges, meta, notes


def _converted_graph(nir, est, net, dt, unit_r):
    from ._core.conversion import IFNeurons, SpikingMaxPool2d, Stepwise

    nodes, edges, reset_subtract = {}, [], []
    prev = "input"
    shape = tuple(int(s) for s in est.input_shape_)
    v_inits = set()
    for i, layer in enumerate(net.layers):
        name = f"layer_{i}"
        inner = layer.module if isinstance(layer, Stepwise) else None
        if isinstance(layer, IFNeurons):
            node = nir.IF(r=np.full(shape, 1.0 / dt), v_threshold=np.full(shape, layer.threshold),
                          v_reset=np.zeros(shape), metadata={"reset": "subtract", "v_init": layer.v_init})
            reset_subtract.append(name)
            if layer.v_init != 0:
                v_inits.add(layer.v_init)
            if unit_r:
                _scale_previous(nodes, prev, name, 1.0 / dt)
                _unit_r(node)
        elif isinstance(inner, torch.nn.Linear):
            node = nir.Affine(weight=_np(inner.weight), bias=_np(inner.bias))
            shape = (inner.out_features,)
        elif isinstance(inner, torch.nn.Conv2d):
            if inner.padding_mode != "zeros":
                raise ValueError(f"Layer {name!r}: Conv2d with padding_mode={inner.padding_mode!r} has no NIR form.")
            node = nir.Conv2d(input_shape=shape[1:], weight=_np(inner.weight), bias=_np(inner.bias),
                              stride=tuple(inner.stride), padding=tuple(inner.padding),
                              dilation=tuple(inner.dilation), groups=inner.groups)
            shape = (int(inner.out_channels), *(int(s) for s in node.output_type["output"][1:]))
        elif isinstance(inner, torch.nn.AvgPool2d):
            ks, st, pd = (tuple(int(a) for a in v) if isinstance(v, (tuple, list)) else (int(v), int(v)) for v in
                          (inner.kernel_size, inner.stride or inner.kernel_size, inner.padding))
            if inner.ceil_mode or (any(pd) and not inner.count_include_pad) or inner.divisor_override:
                raise ValueError(f"Layer {name!r}: AvgPool2d with ceil_mode / count_include_pad=False / "
                                 "divisor_override has no NIR form; use the default AvgPool2d.")
            node = nir.AvgPool2d(kernel_size=np.array(ks), stride=np.array(st), padding=np.array(pd))
            shape = (shape[0], *((s + 2 * p - k) // t + 1 for s, p, k, t in zip(shape[1:], pd, ks, st)))
        elif isinstance(inner, torch.nn.Flatten):
            node = nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1)
            shape = (int(np.prod(shape)),)
        elif isinstance(layer, SpikingMaxPool2d):
            raise ValueError(f"Layer {name!r} is a spiking max-pool (it keeps running spike counts); NIR has no such "
                             "node. Use average pooling (nn.AvgPool2d) in the ANN to export the converted network.")
        else:
            raise ValueError(f"Layer {name!r} ({type(inner or layer).__name__}) has no NIR form.")
        nodes[name] = node
        edges.append((prev, name))
        prev = name
    notes = [f"layers {reset_subtract} reset by subtraction (the rate code of a converted network needs it)"]
    if v_inits:
        notes.append(f"their membranes start at v_init * threshold with v_init={sorted(v_inits)}, NIR's at 0")
    nodes["input"] = nir.Input(input_type=np.array([int(est.n_features_in_)] if len(est.input_shape_) == 1
                                                   else est.input_shape_))
    nodes["output"] = nir.Output(output_type=np.array(shape))
    edges.append((prev, "output"))
    meta = {"readout": "mean_current", "encoder": "current", "input": "features", "n_steps": int(est.n_steps),
            "output_scale": float(net.scales[-1])}
    return nodes, edges, meta, notes


def _scale_previous(nodes, prev, name, g):
    node = nodes.get(prev)
    if not hasattr(node, "weight"):
        raise ValueError(f"unit_r=True needs a weighted layer right before {name!r}.")
    node.weight = node.weight * g
    node.bias = node.bias * g


def to_nir(estimator, *, dt=1e-3, path=None, unit_r=False):
    """Export a fitted estimator's network as a NIR graph.

    Parameters
    ----------
    estimator : fitted estimator
        ``SurrogateSNNClassifier`` / ``SurrogateSNNRegressor`` / ``EvolvedSNN`` (feed-forward or
        recurrent ``lif``, ``cuba`` or ``if`` layers and their readout) or ``ConvertedSNN`` (IF
        layers, Linear / Conv2d / AvgPool2d / Flatten, built with ``v_init=0``).
    dt : float, default=1e-3
        Seconds per simulation step. Time constants in the graph are in seconds, chosen so that a
        forward-Euler step of ``dt`` reproduces the package's update exactly (module docstring).
    path : str or path-like, optional
        Also write the graph there with ``nir.write``.
    unit_r : bool, default=False
        Fold each neuron's resistance ``r`` (and a CubaLIF's ``w_in``) into the incoming weights
        and set it to 1: the same dynamics, for importers that ignore ``r`` (Norse's LIF).

    Returns
    -------
    graph : nir.NIRGraph
        ``Input -> Affine -> neuron -> ... -> Output``; recurrent layers add a ``Linear`` cycle on
        their neuron node. ``graph.metadata['sklearn_snn']`` (JSON) records the readout, the
        encoder, ``n_steps``, ``dt`` and the classes. Layers that reset by subtraction carry
        ``metadata['reset'] = 'subtract'`` (NIR's own neurons reset to ``v_reset``; a warning says so).

    Raises
    ------
    ValueError
        For what NIR cannot express: ``neuron='alif'``, ``normalization='bntt'``/``'tdbn'``, a
        min-max input scaling before a spike encoder, a spiking max-pool, ``v_init != 0``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_snn import SurrogateSNNClassifier
    >>> from sklearn_snn.nir import to_nir
    >>> X = np.random.default_rng(0).normal(size=(30, 4)); y = (X[:, 0] > 0).astype(int)
    >>> clf = SurrogateSNNClassifier((8,), reset="zero", max_iter=2, random_state=0).fit(X, y)
    >>> g = to_nir(clf, dt=1e-3)   # doctest: +SKIP
    >>> sorted(type(n).__name__ for n in g.nodes.values())   # doctest: +SKIP
    ['Affine', 'Affine', 'Input', 'LI', 'LIF', 'Output']
    """
    nir = _nir()
    check_is_fitted(estimator)
    if not (isinstance(dt, (int, float, np.floating)) and math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive number of seconds per step, got {dt!r}.")
    dt = float(dt)
    module = getattr(estimator, "module_", None)
    if module is not None and hasattr(module, "hidden") and hasattr(module, "out"):
        nodes, edges, meta, notes = _snn_graph(nir, estimator, module, dt, unit_r)
    elif module is not None and hasattr(module, "spiking_layers"):
        nodes, edges, meta, notes = _converted_graph(nir, estimator, module, dt, unit_r)
    elif type(estimator).__name__ == "EventPropClassifier":
        raise ValueError("EventPropClassifier simulates exact spike times in continuous time (spike-time input, "
                         "voltage kernels normalised to their peak); its export to NIR is not implemented. Train "
                         "a SurrogateSNNClassifier(neuron='cuba', reset='zero') to export a CUBA network.")
    else:
        raise ValueError(f"{type(estimator).__name__} has no network NIR can express (to_nir exports "
                         "SurrogateSNNClassifier/Regressor, EvolvedSNN and ConvertedSNN).")
    if notes:
        warnings.warn(f"NIR cannot say everything about this network: {'; '.join(notes)}. NIR's neurons reset to "
                      "v_reset and start at 0; the package's own settings are kept in each node's metadata "
                      "('reset', 'v_init'), which other tools ignore, so their spikes will differ.", UserWarning,
                      stacklevel=2)
    meta["dt"] = dt
    meta["estimator"] = type(estimator).__name__
    if getattr(estimator, "y_scale_", None) is not None:  # a regressor: prediction = out * scale + offset
        meta["output_scale"] = np.asarray(estimator.y_scale_, float).tolist()
        meta["output_offset"] = np.asarray(estimator.y_mean_, float).tolist()
    classes = getattr(estimator, "classes_", None)
    if classes is not None:
        try:
            meta["classes"] = json.loads(json.dumps(classes.tolist()))
        except TypeError:  # labels JSON cannot hold: from_nir then needs classes=
            pass
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata={_META_KEY: json.dumps(meta)})
    if path is not None:
        nir.write(str(path), graph)
    return graph


def graph_input(estimator, X):
    """The input a graph written by :func:`to_nir` expects for ``X``, step by step.

    For 2D ``X`` and the ``current`` encoder this is ``X`` itself at every step (the input
    scaling is folded into the graph); for the spike encoders it is the spike trains the
    estimator feeds its network (deterministic at inference); 3D ``X`` is used as it is
    (``delta``-encoded first). A ``ConvertedSNN`` CNN's samples are reshaped to its
    ``input_shape_``.

    Parameters
    ----------
    estimator : fitted estimator
    X : array-like of shape (n_samples, n_features) or (n_samples, n_steps, n_features)

    Returns
    -------
    inputs : ndarray of shape (n_samples, n_steps) + input_shape
        Float64; feed ``inputs[:, t]`` to the graph's Input node at step ``t``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_snn import SurrogateSNNClassifier
    >>> from sklearn_snn.nir import graph_input
    >>> X = np.random.default_rng(0).normal(size=(30, 4)); y = (X[:, 0] > 0).astype(int)
    >>> clf = SurrogateSNNClassifier((8,), n_steps=5, max_iter=1, random_state=0).fit(X, y)
    >>> graph_input(clf, X).shape
    (30, 5, 4)
    """
    from ._core.encoding import encode

    check_is_fitted(estimator)
    X = np.asarray(X, dtype=np.float64)
    n_in = int(estimator.n_features_in_)
    if X.ndim not in (2, 3) or X.shape[-1] != n_in:
        raise ValueError(f"X must be (n_samples, {n_in}) or (n_samples, n_steps, {n_in}); got shape {X.shape}.")
    encoder = getattr(estimator, "encoder", "current")
    if X.ndim == 3:
        return encode(torch.from_numpy(X).transpose(0, 1), encoder, X.shape[1]).transpose(0, 1).numpy().copy()
    n_steps = int(estimator.n_steps)
    if encoder == "current":
        out = np.repeat(X[:, None], n_steps, axis=1)
        shape = getattr(estimator, "input_shape_", None)
        return out.reshape(X.shape[0], n_steps, *shape) if shape is not None and len(shape) > 1 else out
    if getattr(estimator, "input_offset_", None) is not None:
        raise ValueError(f"This estimator min-max scales X before its {encoder!r} encoder; to_nir refuses it "
                         "(refit with input_scaling=None).")
    x = encode(torch.from_numpy(X), encoder, n_steps, train=False)
    return x.transpose(0, 1).numpy().copy()


# ------------------------------------------------------------------------------------ import
_NEURONS = ("LIF", "CubaLIF", "IF", "LI", "I")


def _read_graph(graph_or_path):
    nir = _nir()
    if isinstance(graph_or_path, (str, Path)):
        return nir, nir.read(str(graph_or_path))
    if isinstance(graph_or_path, nir.NIRGraph):
        return nir, graph_or_path
    raise TypeError(f"from_nir takes a nir.NIRGraph or the path of a .nir file, got {type(graph_or_path).__name__}.")


def _graph_meta(graph):
    meta = getattr(graph, "metadata", None)
    raw = meta.get(_META_KEY) if isinstance(meta, dict) else None
    if raw is None:
        return {}
    try:
        return json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))
    except ValueError:
        return {}


def _recurrent_subgraph(name, sub):
    """snnTorch's RLeaky / RSynaptic export: a subgraph Input -> neuron <-> Linear/Affine -> Output."""
    kinds = {k: type(n).__name__ for k, n in sub.nodes.items()}
    neurons = [k for k, t in kinds.items() if t in ("LIF", "CubaLIF")]
    weights = [k for k, t in kinds.items() if t in ("Affine", "Linear")]
    if len(sub.nodes) != 4 or len(neurons) != 1 or len(weights) != 1:
        raise ValueError(f"Node {name!r} is a subgraph ({sorted(kinds.values())}); from_nir reads a subgraph only "
                         "as a recurrent layer: Input -> LIF/CubaLIF <-> Affine/Linear -> Output.")
    return sub.nodes[neurons[0]], sub.nodes[weights[0]]


def _layer_from(name, node, W, b, w_rec, dt):
    """Package parameters of one layer: decays, thresholds and the input gain folded into W."""
    kind = type(node).__name__
    meta = getattr(node, "metadata", None) or {}
    reset = meta.get("reset", "zero")
    reset = reset.decode() if isinstance(reset, bytes) else str(reset)
    n = W.shape[0]
    if kind in ("LIF", "CubaLIF", "LI") and not np.allclose(node.v_leak, 0.0):
        raise ValueError(f"Node {name!r} ({kind}) has v_leak != 0; the package's neurons leak to 0.")
    if kind in ("LIF", "CubaLIF", "IF") and reset != "subtract" and not np.allclose(node.v_reset, 0.0):
        raise ValueError(f"Node {name!r} ({kind}) resets to v_reset != 0; the package resets to 0 (or subtracts).")
    if kind in ("IF", "I"):
        beta, gain = np.ones(n), _full(node.r, n) * dt
    else:
        tau = _full(node.tau_mem if kind == "CubaLIF" else node.tau, n)
        beta = 1.0 - dt / tau
        gain = _full(node.r, n) * (1.0 - beta)
    if np.any(beta < 0) or np.any(beta > 1):
        raise ValueError(f"Node {name!r} ({kind}) has a time constant shorter than dt={dt}: its Euler step is "
                         "unstable. Pass the dt the graph was made for (from_nir(..., dt=...)).")
    alpha = None
    if kind == "CubaLIF":
        alpha = 1.0 - dt / _full(node.tau_syn, n)
        if np.any(alpha < 0) or np.any(alpha >= 1):
            raise ValueError(f"Node {name!r} (CubaLIF) has tau_syn < dt={dt}; pass the graph's dt.")
        gain = gain * _full(node.w_in, n) * (1.0 - alpha)
    if not np.allclose(gain, 1.0, rtol=1e-12, atol=0.0):
        W, b = W * gain[:, None], b * gain
        w_rec = None if w_rec is None else w_rec * gain[:, None]
    thr = None if kind in ("LI", "I") else _full(node.v_threshold, n)
    model = {"LIF": "lif", "CubaLIF": "cuba", "IF": "if"}.get(kind, "readout")
    return dict(name=name, model=model, W=W, b=b, w_rec=w_rec, beta=beta, alpha=alpha, thr=thr, reset=reset)


def _parse_layers(graph, dt):
    nodes, edges = graph.nodes, list(graph.edges)
    kinds = {k: type(n).__name__ for k, n in nodes.items()}
    inputs = [k for k, t in kinds.items() if t == "Input"]
    outputs = [k for k, t in kinds.items() if t == "Output"]
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(f"from_nir reads graphs with one Input and one Output node; got {len(inputs)} and "
                         f"{len(outputs)}.")
    succ = {k: [b for a, b in edges if a == k] for k in nodes}
    layers, pending, cur = [], None, inputs[0]
    n_in = int(np.prod(nodes[inputs[0]].input_type["input"]))
    seen = set()
    while cur != outputs[0]:
        if cur in seen:
            raise ValueError(f"from_nir found a cycle through {cur!r} that is not a recurrent weight on a neuron node.")
        seen.add(cur)
        rec = [o for o in succ[cur] if succ.get(o) == [cur] and kinds.get(o) in ("Affine", "Linear")]
        fwd = [o for o in succ[cur] if o not in rec]
        if len(fwd) != 1:
            raise ValueError(f"Node {cur!r} feeds {len(fwd)} nodes ({fwd}); from_nir reads chains "
                             "(Input -> Affine/Linear -> neuron -> ... -> Output) only.")
        if rec and kinds[cur] not in _NEURONS:
            raise ValueError(f"Node {cur!r} ({kinds[cur]}) has a recurrent loop but is not a neuron node.")
        cur = fwd[0]
        kind = kinds[cur]
        node = nodes[cur]
        if kind == "Output":
            break
        if kind in ("Affine", "Linear"):
            if pending is not None:
                raise ValueError(f"Node {cur!r} follows another weight node without neurons between; from_nir "
                                 "expects Affine/Linear and neuron nodes to alternate.")
            W = np.asarray(node.weight, dtype=np.float64)
            b = np.asarray(node.bias, dtype=np.float64) if kind == "Affine" else np.zeros(W.shape[0])
            if W.ndim != 2:
                raise ValueError(f"Node {cur!r} ({kind}) has a weight of shape {W.shape}; from_nir needs 2D weights.")
            pending = (W, b)
        elif kind == "Flatten" and pending is None and not layers:
            continue  # snnTorch's leading nn.Flatten: the input is flat already
        elif kind in _NEURONS or kind == "NIRGraph":
            if pending is None:
                raise ValueError(f"Neuron node {cur!r} ({kind}) is not preceded by an Affine/Linear node.")
            W, b = pending
            pending = None
            w_rec = None
            if kind == "NIRGraph":
                node, wn = _recurrent_subgraph(cur, node)
                kind = type(node).__name__
                w_rec = np.asarray(wn.weight, dtype=np.float64)
                if type(wn).__name__ == "Affine":
                    b = b + np.asarray(wn.bias, dtype=np.float64)
            rec = [o for o in succ[cur] if succ.get(o) == [cur] and kinds.get(o) in ("Affine", "Linear")]
            if rec:
                wn = nodes[rec[0]]
                w_rec = np.asarray(wn.weight, dtype=np.float64)
                if kinds[rec[0]] == "Affine":
                    b = b + np.asarray(wn.bias, dtype=np.float64)
            if w_rec is not None and w_rec.shape != (W.shape[0], W.shape[0]):
                raise ValueError(f"The recurrent weight of {cur!r} has shape {w_rec.shape}, expected "
                                 f"{(W.shape[0], W.shape[0])}.")
            layers.append(_layer_from(cur, node, W, b, w_rec, dt))
        else:
            raise ValueError(f"Node {cur!r} is a {kind}, which from_nir does not read. It reads Input, Affine, "
                             f"Linear, {', '.join(_NEURONS)}, Flatten (first), recurrent subgraphs and Output.")
    if pending is not None or not layers:
        raise ValueError("The graph must end in a neuron node (LIF, CubaLIF, IF, LI or I) before its Output; "
                         "a trailing Affine/Linear (a non-spiking readout of currents) is not read.")
    if layers[0]["W"].shape[1] != n_in:
        raise ValueError(f"The Input node has {n_in} features but the first weight takes {layers[0]['W'].shape[1]}.")
    return layers, n_in


def _uniform(arrays):
    v = np.concatenate([np.ravel(a) for a in arrays])
    return float(v[0]) if np.all(v == v[0]) else None


def from_nir(graph_or_path, *, dt=1e-3, classes=None, n_steps=None, readout=None, reset=None):
    """A fitted ``SurrogateSNNClassifier`` whose network is read from a NIR graph.

    Parameters
    ----------
    graph_or_path : nir.NIRGraph or path-like
        A chain ``Input -> [Flatten] -> Affine/Linear -> LIF/CubaLIF/IF -> ... -> neuron -> Output``
        (recurrent layers as a ``Linear``/``Affine`` loop on the neuron node or as snnTorch's
        recurrent subgraph). The last neuron node is the readout: ``LI``/``I`` (membrane) or a
        spiking node (spike counts).
    dt : float, default=1e-3
        Seconds per step used to discretise the graph (forward Euler; see :func:`to_nir`).
    classes : array-like, optional
        Labels of the outputs, in order. Default: those stored by :func:`to_nir`, else
        ``0 .. n_outputs - 1``.
    n_steps : int, optional
        Steps of constant-current input for 2D ``X`` (n_samples, n_features). Default: the value
        stored by :func:`to_nir` for graphs that take features; otherwise (``None``) the
        estimator takes 3D input (n_samples, n_steps, n_features), e.g. spike trains.
    readout : str, optional
        How the output activity becomes the logits: default ``'membrane_max'`` for an ``LI``/``I``
        readout, ``'spike_count'`` for a spiking one (or what :func:`to_nir` stored).
    reset : {'zero', 'subtract'}, optional
        Override the reset mode. NIR neurons reset to ``v_reset`` (``'zero'``, the default) unless
        a node's ``metadata['reset']`` says ``'subtract'``. snnTorch exports ``Leaky`` without its
        ``reset_mechanism`` (default ``'subtract'``): pass it here.

    Returns
    -------
    estimator : SurrogateSNNClassifier
        Fitted (``n_iter_ = 0``): it predicts, scores, simulates, saves with
        :func:`sklearn_snn.save` and can be fine-tuned with ``warm_start=True``.

    Examples
    --------
    >>> from sklearn_snn.nir import from_nir
    >>> est = from_nir("model.nir", n_steps=20)   # doctest: +SKIP
    """
    from .surrogate import SurrogateSNNClassifier

    _, graph = _read_graph(graph_or_path)
    if not (isinstance(dt, (int, float, np.floating)) and math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive number of seconds per step, got {dt!r}.")
    meta = _graph_meta(graph)
    layers, n_in = _parse_layers(graph, float(dt))
    if meta.get("scaling_folded"):
        off, sc = np.asarray(meta["input_offset"], float), np.asarray(meta["input_scale"], float)
        W, b = layers[0]["W"], layers[0]["b"]
        layers[0]["W"], layers[0]["b"] = W * sc[None, :], b + W @ off
    spiking = [L for L in layers if L["model"] != "readout"]
    models = {L["model"] for L in spiking}
    if len(models) > 1:
        raise ValueError(f"The graph mixes neuron models {sorted(models)} (nodes "
                         f"{[(L['name'], L['model']) for L in spiking]}); the package runs one model per network.")
    resets = {L["reset"] for L in spiking}
    if len(resets) > 1:
        raise ValueError(f"The graph mixes reset modes {sorted(resets)}; the package uses one per network.")
    model = models.pop() if models else "lif"
    out = layers[-1]
    if out["w_rec"] is not None:
        raise ValueError(f"The output node {out['name']!r} is recurrent; the package's output layer is not.")
    if readout is None:
        stored = meta.get("readout")
        spiking_out = out["model"] != "readout"
        ok = ("spike_count", "first_spike") if spiking_out else ("membrane_max", "membrane_last", "membrane_mean")
        readout = stored if stored in ok else ok[0]
    classes = np.asarray(classes if classes is not None else meta.get("classes", np.arange(out["W"].shape[0])))
    if classes.ndim != 1 or len(classes) != out["W"].shape[0]:
        raise ValueError(f"classes has {len(classes)} labels but the graph has {out['W'].shape[0]} outputs.")
    betas = [L["beta"] for L in layers if model != "if" or L["model"] == "readout"]
    beta = _uniform(betas) if betas else 1.0
    if model == "if" and out["model"] == "readout" and beta != 1.0:
        beta = None
    alphas = [L["alpha"] for L in spiking if L["alpha"] is not None]
    alpha = _uniform(alphas) if alphas else 0.8
    thr = _uniform([L["thr"] for L in spiking]) if spiking else 1.0
    learn_tau = beta is None or alpha is None or beta == 0.0
    learn_threshold = thr is None
    if learn_threshold and min(float(L["thr"].min()) for L in spiking) <= 1e-3:
        raise ValueError("Per-neuron thresholds must be > 1e-3 to be represented; the graph has smaller ones.")
    if n_steps is None and meta.get("input") == "features" and meta.get("n_steps"):
        n_steps = int(meta["n_steps"])
    est = SurrogateSNNClassifier(
        hidden_layer_sizes=tuple(int(L["W"].shape[0]) for L in layers[:-1]), n_steps=int(n_steps or 10),
        neuron=model, tau_mem=beta if not learn_tau and beta > 0 else 0.9,
        tau_syn=alpha if alpha is not None and alpha > 0 else 0.8, threshold=thr if thr is not None else 1.0,
        reset=reset or (resets.pop() if resets else "zero"), recurrent=any(L["w_rec"] is not None for L in layers[:-1]),
        readout=readout, input_scaling=None, learn_tau=learn_tau, learn_threshold=learn_threshold)
    est.classes_ = classes
    est.n_features_in_ = n_in
    est.input_ndim_ = 2 if n_steps is not None else 3
    est.n_steps_in_ = None
    est.input_offset_ = est.input_scale_ = None
    if meta.get("scaling_folded"):
        est.input_scaling = "auto"
        est.input_offset_, est.input_scale_ = off, sc
    est.n_iter_, est.t_, est.loss_curve_, est.reg_curve_ = 0, 0, [], []
    est.validation_scores_ = est.best_validation_score_ = est.best_loss_ = None
    if hasattr(est, "_set_resolved_parameters"):  # fitted neuron_, tau_mem_, ... of the 'auto' parameters
        est._set_resolved_parameters()
    est.module_ = est._rebuild_module()
    _load_weights(est.module_, layers)
    return est


def _logit(p):
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def _load_weights(module, layers):
    def put(param, value):
        param.copy_(torch.as_tensor(np.broadcast_to(value, param.shape).copy(), dtype=param.dtype))

    with torch.no_grad():
        for layer, L in zip(module.layers, layers):
            put(layer.weight, L["W"])
            put(layer.bias, L["b"])
            if getattr(layer, "w_rec", None) is not None:
                put(layer.w_rec, L["w_rec"].T if L["w_rec"] is not None else 0.0)
            if getattr(layer, "learn_tau", False):
                if hasattr(layer, "beta_raw"):
                    put(layer.beta_raw, _logit(L["beta"]))
                if hasattr(layer, "alpha_raw") and L["alpha"] is not None:
                    put(layer.alpha_raw, _logit(L["alpha"]))
            if getattr(layer, "learn_threshold", False) and L["thr"] is not None:
                y = L["thr"] - 1e-3
                put(layer.thr_raw, y + np.log(-np.expm1(-y)))
