"""Meta learning for spiking networks: learning to learn, and architecture search.

- :class:`MetaSNNClassifier`: meta-learns an initialisation (optionally per-tensor inner learning
  rates and, through ``learn_tau`` / ``learn_threshold``, the neuron parameters) over a family of
  tasks with Reptile or first-order MAML, then adapts to a new task in ``n_adapt_steps`` steps.

Re-exported here from the modules that define them:

- :class:`SNNArchitectureSearch`, :func:`synaptic_operations`, :func:`mean_firing_rate`,
  :func:`pareto_indices` from :mod:`sklearn_snn.architecture_search`;
- :class:`FewShotTaskSampler`, :class:`RandmanTaskSampler`, :class:`InstanceTaskSampler`,
  :class:`Episode` from :mod:`sklearn_snn.tasks`.

Learned neuron parameters and hypergradient learning rates live in the core (``learn_tau``,
``learn_threshold``, ``solver='adam-hd'`` / ``'sgd-hd'`` of every gradient estimator).
"""

from __future__ import annotations

import copy
import math
import warnings
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
import torch
from sklearn.base import _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._core.meta_proto import (
    METRICS,
    init_readout_from_prototypes,
    nearest_logits,
    prototype_loss,
    readout_features,
)
from ._core.optimizers import Adam
from ._core.training import (
    LoopState,
    Method,
    StopTraining,
    TrainConfig,
    gradient_epochs,
    new_state,
    run_epochs,
)
from .architecture_search import (
    SNNArchitectureSearch,
    mean_firing_rate,
    pareto_indices,
    synaptic_operations,
)
from .base import make_generator
from .surrogate import SurrogateSNNClassifier
from .tasks import (
    Episode,
    FewShotTaskSampler,
    InstanceTaskSampler,
    RandmanTaskSampler,
    TaskStream,
    as_task,
    check_task_layouts,
)
from .training import as_callback_list, run_training
from .validation import (
    NETWORK_CONSTRAINTS,
    IntervalNotBool,
    check_sample_weight,
    validate_snn_input,
)

__all__ = [
    "Episode",
    "FewShotTaskSampler",
    "InstanceTaskSampler",
    "MetaSNNClassifier",
    "RandmanTaskSampler",
    "SNNArchitectureSearch",
    "mean_firing_rate",
    "pareto_indices",
    "synaptic_operations",
]


# --------------------------------------------------------------------------------------------
# Learning to learn
# --------------------------------------------------------------------------------------------

_META_CONSTRAINTS = {k: v for k, v in NETWORK_CONSTRAINTS.items()}
_META_CONSTRAINTS.update({
    "alpha": [Interval(Real, 0, None, closed="left")],
    "batch_size": [StrOptions({"auto"}), IntervalNotBool(Integral, 1, None, closed="left")],
    "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
    "solver": [StrOptions({"adam", "adamw", "sgd", "adam-hd", "sgd-hd"})],
    "max_iter": [IntervalNotBool(Integral, 1, None, closed="left")],
    "learn_tau": ["boolean"],
    "learn_threshold": ["boolean"],
    "meta_algorithm": [StrOptions({"reptile", "fomaml", "protonet"})],
    "adapt_layers": [StrOptions({"all", "readout"})],
    "prototype_metric": [StrOptions(set(METRICS))],
    "prototype_per": [StrOptions({"class", "sample", "ridge"})],
    "readout_init": [StrOptions({"prototypes", "logistic", "nearest"})],
    "n_meta_iter": [IntervalNotBool(Integral, 1, None, closed="left")],
    "meta_batch_size": [IntervalNotBool(Integral, 1, None, closed="left")],
    "meta_lr": [Interval(Real, 0, None, closed="neither")],
    "meta_lr_schedule": [StrOptions({"constant", "cosine"})],
    "n_inner_steps": [IntervalNotBool(Integral, 1, None, closed="left"), None],
    "n_adapt_steps": [IntervalNotBool(Integral, 1, None, closed="left")],
    "learn_lr": ["boolean"],
})


@torch.no_grad()
def _logistic_readout(module, x, y, n_out, sample_weight=None, chunk=256):
    """Set the leaky readout to a multinomial logistic regression on the readout features of
    ``x`` (T, B, F): ``v_T = W phi + kappa b`` (``meta_proto``), so ``W`` is the coefficient
    matrix and ``b`` the intercept over ``kappa``. ``chunk`` samples are simulated at a time."""
    from sklearn.linear_model import LogisticRegression

    parts = [readout_features(module, x[:, s:s + chunk]) for s in range(0, x.shape[1], chunk)]
    phi = torch.cat([p for p, _ in parts]).double().cpu().numpy()
    kappa = parts[0][1]
    clf = LogisticRegression(C=1.0, max_iter=1000).fit(phi, y.cpu().numpy(), sample_weight=sample_weight)
    coef, intercept = clf.coef_, clf.intercept_
    if coef.shape[0] == 1:   # binary: sklearn's one row is the difference of the two classes' scores
        coef, intercept = np.vstack([-coef / 2, coef / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])
    weight = np.zeros((n_out, phi.shape[1]))
    bias = np.full(n_out, -1e3)   # a class absent from y is never predicted
    weight[clf.classes_], bias[clf.classes_] = coef, intercept / kappa
    out = module.out
    out.weight.copy_(torch.as_tensor(weight, dtype=out.weight.dtype))
    out.bias.copy_(torch.as_tensor(bias, dtype=out.bias.dtype))


class MetaSNNClassifier(SurrogateSNNClassifier):
    """A spiking classifier whose initialisation is meta-learned over a family of tasks.

    ``meta_fit(tasks)`` learns, with Reptile (Nichol et al. 2018) or first-order MAML (Finn et al.
    2017), an initial state of the network (weights, and with ``learn_tau`` / ``learn_threshold``
    the per-neuron time constants and thresholds; with ``learn_lr`` also one inner learning rate
    per parameter tensor) from which a few gradient steps solve a new task of the family.
    ``fit(X, y)`` then adapts from that state in ``n_adapt_steps`` steps; before ``meta_fit`` (or
    after ``clone``), ``fit`` trains from a random initialisation for ``max_iter`` epochs like
    :class:`~sklearn_snn.SurrogateSNNClassifier`. Network, loss, training step and loop are the
    package's core (:class:`~sklearn_snn._core.network.SNN`, ``_core.training``).

    Meta-training, per meta-iteration, for each of ``meta_batch_size`` tasks: copy the meta
    state, run ``n_inner_steps`` steps of the inner optimizer (``solver``, learning rate
    ``learning_rate_init`` or the learned ones) on the task's support set (Reptile: support and
    query together), then

    - Reptile: the meta "gradient" is ``theta - theta_task`` (the move towards the adapted state);
    - FOMAML: the meta gradient is the query-loss gradient at the adapted state;
    - ``learn_lr``: the first-order hypergradient of the query loss w.r.t. each log learning rate,
      ``g_query . (theta_task - theta)`` (per tensor; Baydin et al.'s hypergradient over a whole
      adaptation).

    The averaged meta gradients take one Adam step of size ``meta_lr``.

    ``meta_algorithm='protonet'`` (Snell et al. 2017) has no inner loop: per task, the query
    loss of the readout built from the support set's class means ("prototypes") of the last
    hidden layer's decayed spike counts, ``-s ||phi(x) - c_k||^2``, is minimised in the hidden
    layers and the scale ``s`` (``meta_scale_``). A leaky readout is linear in these features,
    so ``fit`` starts from that very readout (``W_k = 2 s c_k``, ``b_k = -s ||c_k||^2 / kappa``,
    Proto-MAML, Triantafillou et al. 2020), for any number of classes, and fine-tunes for
    ``n_adapt_steps`` steps. It needs a membrane readout.

    Parameters
    ----------
    hidden_layer_sizes, n_steps, neuron, tau_mem, tau_syn, threshold, reset, surrogate,
    surrogate_slope, recurrent, encoder, readout, input_scaling, alpha, batch_size, solver,
    learn_tau, learn_threshold, device, torch_num_threads, random_state, verbose :
        As in :class:`~sklearn_snn.SurrogateSNNClassifier`.
    learning_rate_init : float, default=5e-3
        Learning rate of adaptation (inner loop, ``fit`` after ``meta_fit``) and of plain ``fit``.
    max_iter : int, default=100
        Epochs of ``fit`` from a random initialisation (no ``meta_fit``).
    meta_algorithm : {'fomaml', 'reptile', 'protonet'}, default='fomaml'
        First-order MAML worked better than Reptile (with the Adam outer step) in the few-shot
        digits benchmark (``benchmarks/meta.py``); 'protonet' meta-learns the hidden layers for
        prototype readouts (above). On held-out digit classes, 'protonet' meta-trained on
        :class:`~sklearn_snn.meta.InstanceTaskSampler` episodes of the base classes' images,
        with ``readout='membrane_mean'`` and ``readout_init='logistic'``, did best (see the
        user guide's meta-learning page for the figures against logistic regression on the
        pixels).
    n_meta_iter : int, default=300
        Meta-iterations (outer steps).
    meta_batch_size : int, default=4
        Tasks per meta-iteration.
    meta_lr : float, default=3e-3
        Adam step size of the outer update.
    meta_lr_schedule : {'constant', 'cosine'}, default='constant'
        'cosine' anneals the outer step size to zero over the ``n_meta_iter`` meta-iterations.
    n_inner_steps : int or None, default=None
        Inner steps per task in meta-training (``None``: ``n_adapt_steps``).
    n_adapt_steps : int, default=10
        Epochs of adaptation in ``fit`` after ``meta_fit``: one gradient step each for a task of
        up to ``batch_size`` samples (the few-shot case), so steps and epochs coincide there.
    learn_lr : bool, default=False
        Meta-learn one inner learning rate per parameter tensor ('fomaml', 'reptile').
    adapt_layers : {'all', 'readout'}, default='all'
        What adaptation (the inner loop and ``fit`` after ``meta_fit``) trains: every parameter,
        or the readout only (ANIL, Raghu et al. 2020; the hidden layers stay meta-learned).
    prototype_metric : {'euclidean', 'cosine'}, default='euclidean'
        How 'protonet' scores a sample against the prototypes: ``-s ||phi - c_k||^2``, or
        ``s cos(phi, c_k)`` with a learned temperature ``s`` (the readout ``fit`` starts from
        then classifies as the cosine prototypes do).
    prototype_per : {'class', 'sample', 'ridge'}, default='class'
        What 'protonet' meta-training scores a query against: the class means of the support
        features (ProtoNet), or every support sample as a prototype of its own, a class scoring
        ``log sum_j exp(-s ||phi - phi_j||^2)`` over its samples (a soft nearest neighbour,
        Frosst et al. 2019; close to Matching Networks, Vinyals et al. 2016). 'sample' suits
        classes that are not one cluster, such as the curves of random-manifold spike-timing
        tasks; use it with ``readout_init='nearest'``. 'ridge': no prototypes but a ridge
        regression of the support labels on the features, solved in closed form and
        differentiated through (R2-D2, Bertinetto et al. 2019), a linear head like the one
        ``readout_init='logistic'`` fits; its temperature ``s`` starts at 10.
    readout_init : {'prototypes', 'logistic', 'nearest'}, default='prototypes'
        The readout ``fit`` starts from after a 'protonet' ``meta_fit``: the support set's
        prototype readout, or an L2-regularised multinomial logistic regression (``C=1``) on the
        same readout features of the support set (a linear probe of the meta-learned embedding,
        Tian et al. 2020), fitted to convergence by L-BFGS before the ``n_adapt_steps`` steps.
        'nearest': no gradient step; ``fit`` keeps the support set's readout features
        (``support_features_``) and the estimator scores a sample by the soft nearest-neighbour
        scores above (with ``meta_scale_`` and ``prototype_metric``) against them; ``module_``
        itself holds the class-mean prototype readout (what ``simulate`` and exports use).

    Attributes
    ----------
    meta_module_ : torch.nn.Module
        The meta-learned initial network (after ``meta_fit``).
    meta_n_way_ : int
        Outputs of the meta-learned network (most classes in a meta-training task).
    meta_loss_curve_ : list of float
        Mean query loss after adaptation per meta-iteration (FOMAML; Reptile: after the inner loop
        on the whole task).
    inner_lrs_ : ndarray or None
        The learned per-tensor inner learning rates (``learn_lr``).
    meta_scale_ : float or None
        The learned scale of the prototype readout ('protonet').
    support_features_, support_targets_ : ndarray
        The support set's readout features (n_support, n_hidden) and class indices, kept by
        ``fit`` with ``readout_init='nearest'`` after a 'protonet' ``meta_fit`` (only then).
    n_meta_iter_ : int
        Meta-iterations run.
    classes_, module_, n_iter_, t_, loss_curve_, n_features_in_, ... :
        As in :class:`~sklearn_snn.SurrogateSNNClassifier`, after ``fit``.

    Examples
    --------
    >>> from sklearn_snn.meta import FewShotTaskSampler, MetaSNNClassifier
    >>> train = FewShotTaskSampler(n_way=3, k_shot=3, n_query=3, classes=range(6), random_state=0)
    >>> test = FewShotTaskSampler(n_way=3, k_shot=3, n_query=3, classes=range(6, 10))
    >>> clf = MetaSNNClassifier((16,), n_steps=4, n_meta_iter=5, n_adapt_steps=3, random_state=0)
    >>> clf = clf.meta_fit(train)
    >>> ep = test.sample(random_state=0)
    >>> clf.fit(ep.X_support, ep.y_support).predict(ep.X_query).shape
    (9,)
    """

    _parameter_constraints = _META_CONSTRAINTS
    _torch_attributes = ("module_", "meta_module_")
    _fitted_attributes: ClassVar[dict] = {
        "meta_input_offset_": "array?", "meta_input_scale_": "array?", "meta_n_way_": "int",
        "meta_loss_curve_": "floats", "inner_lrs_": "array?", "n_meta_iter_": "int",
        "meta_scale_": "float?", "support_features_": "array?", "support_targets_": "array?",
    }


    @classmethod
    def default_search_space(cls):
        """Optuna distributions for the parameters worth tuning (the default of ``OptunaSearchCV``).

        A search calls ``fit``, which trains from a random initialisation (clones are not
        meta-fitted), so only the network and its training are searched: ``neuron`` ('lif' or
        'cuba'), ``tau_mem`` (2 to 40 steps, log), ``tau_syn`` (2 to 20 steps, log),
        ``threshold`` (0.5 to 2), ``surrogate_slope`` (1 to 25, log), ``hidden_layer_sizes`` (16,
        32, 64, 128; few-shot tasks are small), ``learning_rate_init`` (1e-3 to 3e-2, log),
        ``n_steps`` (5 to 20) and ``encoder`` (current, rate, latency). The ``meta_*`` parameters
        act in ``meta_fit`` only.

        Returns
        -------
        space : dict of str to optuna.distributions.BaseDistribution
            ``hidden_layer_sizes`` choices are strings such as ``"128x64"``, which
            :class:`~sklearn_snn.model_selection.OptunaSearchCV` decodes to tuples.
        """
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        # the surrogate network's space, narrowed to few-shot sizes; the surrogate family and
        # the weight decay are left at their defaults
        space = super().default_search_space()
        for name in ("surrogate", "alpha"):
            del space[name]
        space.update({
            "hidden_layer_sizes": CategoricalDistribution(["16", "32", "64", "128"]),
            "learning_rate_init": FloatDistribution(1e-3, 3e-2, log=True),
            "n_steps": IntDistribution(5, 20, step=5),
        })
        return space

    def __init__(self, hidden_layer_sizes=(64,), *, n_steps=10, neuron="lif", tau_mem=10.0, tau_syn=5.0,
                 threshold=1.0, reset="subtract", surrogate="fast_sigmoid", surrogate_slope=5.0, recurrent=False,
                 encoder="current", readout="membrane_max", input_scaling="auto", alpha=0.0, batch_size="auto",
                 learning_rate_init=5e-3, solver="adam", max_iter=100, learn_tau=False, learn_threshold=False,
                 meta_algorithm="fomaml", n_meta_iter=300, meta_batch_size=4, meta_lr=3e-3,
                 meta_lr_schedule="constant", n_inner_steps=None, n_adapt_steps=10, learn_lr=False, adapt_layers="all",
                 prototype_metric="euclidean", prototype_per="class", readout_init="prototypes", device="auto",
                 torch_num_threads=None, random_state=None, verbose=0):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.n_steps = n_steps
        self.neuron = neuron
        self.tau_mem = tau_mem
        self.tau_syn = tau_syn
        self.threshold = threshold
        self.reset = reset
        self.surrogate = surrogate
        self.surrogate_slope = surrogate_slope
        self.recurrent = recurrent
        self.encoder = encoder
        self.readout = readout
        self.input_scaling = input_scaling
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.solver = solver
        self.max_iter = max_iter
        self.learn_tau = learn_tau
        self.learn_threshold = learn_threshold
        self.meta_algorithm = meta_algorithm
        self.n_meta_iter = n_meta_iter
        self.meta_batch_size = meta_batch_size
        self.meta_lr = meta_lr
        self.meta_lr_schedule = meta_lr_schedule
        self.n_inner_steps = n_inner_steps
        self.n_adapt_steps = n_adapt_steps
        self.learn_lr = learn_lr
        self.adapt_layers = adapt_layers
        self.prototype_metric = prototype_metric
        self.prototype_per = prototype_per
        self.readout_init = readout_init
        self.device = device
        self.torch_num_threads = torch_num_threads
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_is_fitted__(self):
        return hasattr(self, "module_")

    def _meta_fitted(self):
        return hasattr(self, "meta_module_")

    # --- the shared adaptation loop -------------------------------------------------------------
    def _adapt_config(self, n_steps):
        return TrainConfig(max_iter=n_steps, batch_size=self.batch_size, learning_rate_init=self.learning_rate_init,
                           alpha=self.alpha, solver=self.solver, n_iter_no_change=n_steps + 1, tol=0.0, verbose=0)

    def _adaptation_state(self, module, cfg):
        """Optimizer state of an adaptation: the learned per-tensor inner rates, when learned;
        the readout's parameters only with ``adapt_layers='readout'``."""
        params = list(module.parameters())
        lrs = getattr(self, "inner_lrs_", None)
        if lrs is not None:
            groups = [{"params": [p], "lr": float(lr)} for p, lr in zip(params, lrs)]
        else:
            groups = [{"params": [p], "lr": cfg.learning_rate_init} for p in params]
        if self.adapt_layers == "readout":
            readout = {id(p) for p in module.out.parameters()}
            groups = [g for g in groups if id(g["params"][0]) in readout]
        elif lrs is None:
            groups = None
        return new_state(module, cfg, params=groups)

    def _adapt(self, module, Xt, yt, n_steps, generator):
        """``n_steps`` epochs of the core training loop from the module's current state (an inner
        adaptation of meta-training)."""
        cfg = self._adapt_config(n_steps)
        state = self._adaptation_state(module, cfg)
        run_epochs(module, state, Xt, yt, self._make_step(generator), cfg, n_steps, generator=generator)
        if state.interrupted:   # the one Ctrl-C stops meta_fit too
            raise KeyboardInterrupt
        return state

    def _tensors(self, X, y):
        return self._to_tensor(self._scale(X)), torch.as_tensor(y, dtype=torch.long, device=self._device())

    # --- meta-training --------------------------------------------------------------------------
    def meta_fit(self, tasks, n_meta_iter=None, *, epoch_callback=None):
        """Meta-learn the initial state over a family of tasks.

        Parameters
        ----------
        tasks : FewShotTaskSampler, sequence or iterable
            A sampler (any object with ``sample(random_state) -> (X_s, y_s, X_q, y_q, ...)``), a
            sequence of tasks (drawn with replacement) or an iterator of tasks (consumed in
            order; meta-training stops when it is exhausted). A task is an :class:`Episode` /
            4-tuple ``(X_support, y_support, X_query, y_query)`` or a pair ``(X, y)`` (split in
            stratified halves for FOMAML). Labels are mapped to 0..k-1 per task (sorted).
        n_meta_iter : int or None
            Overrides the parameter of the same name for this call.
        epoch_callback : callable or list of callables, optional
            ``epoch_callback(estimator, meta_iteration, info) -> bool`` after every meta-batch;
            truthy stops (``info``: ``meta_loss``, ``time``).

        Returns
        -------
        self
        """
        self._validate_params()
        n_iter = self.n_meta_iter if n_meta_iter is None else int(n_meta_iter)
        rng = check_random_state(self.random_state)
        gen = make_generator(self.random_state)
        stream = TaskStream(tasks, rng)
        if stream.seq is not None:
            check_task_layouts(stream.seq, lambda i: f"tasks[{i}]")
        split = self.meta_algorithm == "fomaml"
        n_inner = self.n_inner_steps or self.n_adapt_steps

        # a first group of tasks fixes the input layout, the number of outputs and the scaling
        first = []
        for _ in range(max(self.meta_batch_size, 8)):
            try:
                first.append(as_task(stream.next(), split, rng))
            except StopIteration:
                break
        if not first:
            raise ValueError("tasks yielded no task.")
        check_task_layouts(first, lambda i: f"task #{i} drawn from tasks")
        for name in ("meta_module_", "module_", "inner_lrs_", "meta_scale_", "support_features_",
                     "support_targets_"):
            if hasattr(self, name):
                delattr(self, name)
        X_all = np.concatenate([np.concatenate([t[0], t[2]]) for t in first])
        X_all, _ = validate_snn_input(self, X_all, reset=True)
        self._fit_scaler(X_all)
        self.meta_input_offset_, self.meta_input_scale_ = self.input_offset_, self.input_scale_
        self.meta_n_way_ = int(max(max(t[1].max(), t[3].max()) for t in first) + 1)
        with self._threads():
            meta = self._build_module(self._n_encoded(self.n_features_in_), self.meta_n_way_, gen)
            meta.to(self._device())
        params = list(meta.parameters())
        log_lrs = (torch.full((len(params),), math.log(self.learning_rate_init), dtype=torch.float64,
                              requires_grad=True) if self.learn_lr else None)
        proto = self.meta_algorithm == "protonet"
        # the prototype readout's scale, started at 1 / (width of the last hidden layer): squared
        # distances of decayed spike counts grow with the width
        # (cosine, and the ridge head: a temperature of 10)
        cosine = self.prototype_metric == "cosine" or self.prototype_per == "ridge"
        log_scale = torch.tensor(math.log(10.0) if cosine else -math.log(meta.out.weight.shape[1]),
                                 requires_grad=True)
        groups = [{"params": params + ([log_lrs] if self.learn_lr and not proto else [])}]
        if proto:
            groups.append({"params": [log_scale], "lr": 10 * self.meta_lr})
        outer = Adam(groups, lr=self.meta_lr)   # the package's Adam: no import of torch's compiler
        schedule = (torch.optim.lr_scheduler.CosineAnnealingLR(outer, T_max=max(n_iter, 1))
                    if self.meta_lr_schedule == "cosine" else None)
        fast = copy.deepcopy(meta)
        self.meta_loss_curve_ = []
        pending = list(first)

        def meta_batch():
            batch = []
            try:
                while len(batch) < self.meta_batch_size:
                    batch.append(pending.pop(0) if pending else as_task(stream.next(), split, rng))
            except StopIteration:
                if not batch:
                    raise StopTraining from None
            if proto:
                return prototype_batch(batch)
            meta_grads = [torch.zeros_like(p) for p in params]
            lr_grad = torch.zeros(len(params), dtype=torch.float64) if self.learn_lr else None
            losses = []
            for Xs, ys, Xq, yq in batch:
                self._check_task(Xs, Xq)
                if self.learn_lr:
                    self.inner_lrs_ = log_lrs.detach().exp().numpy()
                fast.load_state_dict(meta.state_dict())
                if self.meta_algorithm == "reptile" and Xq is not Xs:
                    Xi, yi = np.concatenate([Xs, Xq]), np.concatenate([ys, yq])
                else:
                    Xi, yi = Xs, ys
                inner = self._adapt(fast, *self._tensors(Xi, yi), n_inner, gen)
                fparams = list(fast.parameters())
                need_query = self.meta_algorithm == "fomaml" or self.learn_lr
                if need_query:
                    fast.zero_grad(set_to_none=True)
                    loss, _ = self._make_step(gen)(fast, *self._tensors(Xq, yq), None)
                    losses.append(loss)
                with torch.no_grad():
                    for k, (p, q) in enumerate(zip(params, fparams)):
                        delta = q - p
                        if self.meta_algorithm == "reptile":
                            meta_grads[k] -= delta
                        elif q.grad is not None:
                            meta_grads[k] += q.grad
                        if self.learn_lr and q.grad is not None:
                            lr_grad[k] += float((q.grad * delta).sum())
                if not need_query:
                    losses.append(inner.loss_curve[-1])
            outer.zero_grad(set_to_none=True)
            for p, g in zip(params, meta_grads):
                p.grad = g / len(batch)
            if self.learn_lr:
                log_lrs.grad = lr_grad / len(batch)
            outer.step()
            if schedule is not None:
                schedule.step()
            self.meta_loss_curve_.append(float(np.mean(losses)))
            return {"meta_loss": self.meta_loss_curve_[-1]}

        def prototype_batch(batch):
            # ProtoNet: the query loss under the support set's prototype readout, one outer step
            outer.zero_grad(set_to_none=True)
            losses = []
            for Xs, ys, Xq, yq in batch:
                self._check_task(Xs, Xq)
                (xs, ys_t), (xq, yq_t) = self._tensors(Xs, ys), self._tensors(Xq, yq)
                n_way = int(max(ys.max(), yq.max()) + 1)
                loss = prototype_loss(meta, self._encode(xs, train=True, generator=gen), ys_t,
                                      self._encode(xq, train=True, generator=gen), yq_t, n_way, log_scale,
                                      self.prototype_metric, self.prototype_per)
                (loss / len(batch)).backward()
                losses.append(float(loss.detach()))
            outer.step()
            if schedule is not None:
                schedule.step()
            self.meta_loss_curve_.append(float(np.mean(losses)))
            return {"meta_loss": self.meta_loss_curve_[-1]}

        def on_end(state):
            # the meta-parameters change only in outer.step(): they are those of the last whole meta-batch
            self.meta_module_ = meta
            self.inner_lrs_ = log_lrs.detach().exp().numpy() if self.learn_lr and not proto else None
            self.meta_scale_ = float(log_scale.detach().exp()) if proto else None
            self.n_meta_iter_ = state.n_iter

        method = Method(meta_batch, on_end=on_end,
                        describe=lambda n, info: f"Meta-iteration {n}, loss = {info['meta_loss']:.6f}")
        with self._threads():
            run_training(self, method, n_iter, LoopState(), epoch_callback=epoch_callback, what="Meta-training",
                         keeps="the meta-learned state of the last complete meta-batch")
        return self

    def _features(self, X):
        """Readout features (n_samples, width of the last hidden layer) of validated input ``X``,
        in float64 and batches as the predictions are."""
        return self._batched(X, lambda m, x: readout_features(m, x)[0].double().cpu().numpy())

    def _fit_nearest(self, X, Xt, targets, n_out):
        """``readout_init='nearest'``: keep the support set's readout features; ``module_``'s own
        readout is the class-mean prototype readout. No gradient step."""
        init_readout_from_prototypes(self.module_, self._encode(Xt, train=False), targets, n_out, self.meta_scale_,
                                     metric=self.prototype_metric)
        self.support_features_ = self._features(X)
        self.support_targets_ = targets.cpu().numpy()
        self.n_iter_, self.t_, self.loss_curve_ = 0, 0, []
        return self

    def _logits(self, X):
        if not hasattr(self, "support_features_"):
            return super()._logits(X)
        check_is_fitted(self)
        X, _ = validate_snn_input(self, X, reset=False)
        scores = nearest_logits(torch.as_tensor(self._features(X)), torch.as_tensor(self.support_features_),
                                torch.as_tensor(self.support_targets_), len(self.classes_), self.meta_scale_,
                                self.prototype_metric)
        return scores.numpy()

    def _check_task(self, Xs, Xq):
        for X in (Xs, Xq):
            nd = X.ndim
            if nd != self.input_ndim_ or X.shape[-1] != self.n_features_in_:
                raise ValueError(f"All tasks must share the input layout: expected {self.input_ndim_}D input with "
                                 f"{self.n_features_in_} features, got shape {X.shape}.")

    # --- hooks of the shared fit --------------------------------------------------------------------
    def _fit_scaler(self, X):
        if self._meta_fitted() and hasattr(self, "meta_input_offset_"):
            self.input_offset_, self.input_scale_ = self.meta_input_offset_, self.meta_input_scale_
            return
        super()._fit_scaler(X)

    def _module_from_meta(self, n_in, n_out, generator):
        module = super()._build_module(n_in, n_out, generator)
        src = self.meta_module_.state_dict()
        own = module.state_dict()
        mismatched = [k for k in own if k not in src or src[k].shape != own[k].shape]
        if mismatched and getattr(self, "meta_scale_", None) is None:
            warnings.warn(f"The task has {n_out} classes but the meta-learned network has {self.meta_n_way_} "
                          f"outputs; {', '.join(mismatched)} start from a random initialisation.", UserWarning)
        module.load_state_dict({k: (src[k] if k not in mismatched else v) for k, v in own.items()})
        return module

    def _rebuild_module(self, name="module_"):
        """A freshly built network of the saved architecture (``sklearn_snn.load`` loads the
        weights after): the meta-learned one has ``meta_n_way_`` outputs, the adapted one one per class."""
        n_out = self.meta_n_way_ if name == "meta_module_" else len(self.classes_)
        return super()._build_module(self._n_encoded(self.n_features_in_), n_out, torch.Generator().manual_seed(0))

    def _build_module(self, n_in, n_out, generator):
        if self._meta_fitted() and n_in == self._n_encoded(self.n_features_in_):
            return self._module_from_meta(n_in, n_out, generator)
        return super()._build_module(n_in, n_out, generator)

    # --- public API ---------------------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None, *, epoch_callback=None):
        """Adapt from the meta-learned state in ``n_adapt_steps`` (after ``meta_fit``), else train
        from a random initialisation for ``max_iter`` epochs.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, n_steps, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), optional
        epoch_callback : callable or list of callables, optional
            ``epoch_callback(estimator, epoch, info) -> bool`` after every epoch; truthy stops.
            Every callback of a list is called, in order; any truthy one stops.

        Returns
        -------
        self
        """
        callbacks = as_callback_list(epoch_callback)
        if not self._meta_fitted():
            return self._fit(X, y, sample_weight, incremental=False, epoch_callback=epoch_callback)
        n_features, ndim = self.n_features_in_, self.input_ndim_
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None.")
        X, y = validate_snn_input(self, X, y, reset=True)
        if X.shape[-1] != n_features or X.ndim != ndim:
            self.n_features_in_, self.input_ndim_ = n_features, ndim
            raise ValueError(f"X has {X.shape[-1]} features ({X.ndim}D), but {type(self).__name__} was meta-fitted "
                             f"on {ndim}D input with {n_features} features.")
        if sample_weight is not None:
            sample_weight = check_sample_weight(sample_weight, X)
            if self.readout_init == "nearest" and getattr(self, "meta_scale_", None) is not None:
                raise ValueError("readout_init='nearest' keeps the support samples as they are and cannot weigh "
                                 "them; drop sample_weight or use readout_init='logistic'.")
        targets, n_out = self._prepare_targets(y, reset=True)
        for name in ("support_features_", "support_targets_"):
            if hasattr(self, name):
                delattr(self, name)
        self._generator = make_generator(self.random_state)
        self._fit_scaler(X)
        device = self._device()
        with self._threads():
            self.module_ = self._build_module(self._n_encoded(self.n_features_in_), n_out, self._generator).to(device)
            Xt = self._to_tensor(self._scale(X), device=device)
            if getattr(self, "meta_scale_", None) is not None and self.readout_init == "nearest":
                return self._fit_nearest(X, Xt, targets.to(device), n_out)
            if getattr(self, "meta_scale_", None) is not None and self.readout_init == "logistic":
                _logistic_readout(self.module_, self._encode(Xt, train=False), targets.to(device), n_out,
                                  sample_weight=sample_weight)
            elif getattr(self, "meta_scale_", None) is not None:   # the support set's prototype readout
                init_readout_from_prototypes(self.module_, self._encode(Xt, train=False), targets.to(device), n_out,
                                             self.meta_scale_, metric=self.prototype_metric)
            wt = None if sample_weight is None else torch.tensor(sample_weight, dtype=torch.float32, device=device)
            cfg = self._adapt_config(self.n_adapt_steps)
            state = self._train_state = self._adaptation_state(self.module_, cfg)
            method = gradient_epochs(self.module_, state, Xt, targets.to(device), self._make_step(self._generator),
                                     cfg, self.n_adapt_steps, generator=self._generator, sample_weight=wt)
            run_training(self, method, self.n_adapt_steps, state, epoch_callback=callbacks, sync=self._sync_history,
                         what="Adaptation", keeps="the weights reached so far")
        return self
