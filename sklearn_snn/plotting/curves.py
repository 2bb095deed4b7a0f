"""Displays of curves and weights: accuracy against steps, receptive fields, fitness and loss
curves, surrogate derivatives."""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._base import check_matplotlib, get_axes

__all__ = ["StepsCurveDisplay", "ReceptiveFieldDisplay", "FitnessCurveDisplay", "LossCurveDisplay",
           "SurrogateDisplay"]


# ------------------------------------------------------------------------------------------
class StepsCurveDisplay:
    """Accuracy of a converted SNN against the number of simulation steps, beside the ANN's.

    Parameters
    ----------
    steps : ndarray
    accuracy : ndarray
    ann_accuracy : float or None, default=None

    Attributes
    ----------
    line_ : matplotlib Line2D
        Accuracy against steps (one point per entry of ``steps``).
    ann_line_ : matplotlib Line2D or None
        Horizontal line at the ANN's accuracy.
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn_snn.plotting import StepsCurveDisplay
    >>> disp = StepsCurveDisplay([1, 4, 16], [0.3, 0.8, 0.9], 0.92).plot()
    >>> disp.line_.get_xdata().tolist()
    [1, 4, 16]
    """

    def __init__(self, steps, accuracy, ann_accuracy=None):
        self.steps = np.asarray(steps)
        self.accuracy = np.asarray(accuracy)
        self.ann_accuracy = ann_accuracy

    def plot(self, ax=None, *, label="SNN", logx=True, **kwargs):
        """Draw the curve.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
        label : str, default='SNN'
        logx : bool, default=True
            Logarithmic step axis (base 2).
        **kwargs :
            Passed to :meth:`~matplotlib.axes.Axes.plot`.

        Returns
        -------
        self
        """
        fig, (ax,) = get_axes(ax, "StepsCurveDisplay.plot")
        kwargs.setdefault("marker", "o")
        (self.line_,) = ax.plot(self.steps, self.accuracy, label=label, **kwargs)
        self.ann_line_ = None
        if self.ann_accuracy is not None:
            self.ann_line_ = ax.axhline(self.ann_accuracy, color="grey", linestyle="--", label="ANN")
        if logx:
            ax.set_xscale("log", base=2)
        ax.set_xlabel("simulation steps")
        ax.set_ylabel("accuracy")
        ax.legend(loc="lower right")
        self.ax_, self.figure_ = ax, fig
        return self

    @classmethod
    def from_estimator(cls, estimator, X, y, *, steps=(1, 2, 4, 8, 16, 32, 64), ax=None, **kwargs):
        """Accuracy on ``X, y`` for each number of steps, from ``estimator.score_curve``.

        Parameters
        ----------
        estimator : fitted ConvertedSNN (or any estimator with ``score_curve(X, y, steps)``)
        X, y : array-like
        steps : sequence of int, default=(1, 2, 4, 8, 16, 32, 64)
        ax : Axes, default=None
        **kwargs :
            Passed to :meth:`plot`.

        Returns
        -------
        StepsCurveDisplay

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> from sklearn.datasets import load_digits
        >>> from sklearn_snn import ConvertedSNN
        >>> from sklearn_snn.plotting import StepsCurveDisplay
        >>> X, y = load_digits(return_X_y=True)
        >>> clf = ConvertedSNN(hidden_layer_sizes=(32,), max_iter=20, n_steps=16,
        ...                    random_state=0).fit(X[:600] / 16, y[:600])
        >>> disp = StepsCurveDisplay.from_estimator(clf, X[600:900] / 16, y[600:900], steps=[2, 8, 32])
        >>> len(disp.line_.get_xdata())
        3
        """
        from ..metrics import final_estimator

        est, _ = final_estimator(estimator)
        if not hasattr(est, "score_curve"):
            raise TypeError(f"{type(est).__name__} has no score_curve(X, y, steps); StepsCurveDisplay needs "
                            "a ConvertedSNN.")
        if est is not estimator and hasattr(estimator, "steps"):
            X = estimator[:-1].transform(X)
        curve = est.score_curve(X, y, steps=steps)
        return cls.from_curve(curve, ax=ax, **kwargs)

    @classmethod
    def from_curve(cls, curve, *, ax=None, **kwargs):
        """Draw a ``Bunch(steps, accuracy, ann_accuracy)`` such as ``ConvertedSNN.score_curve`` returns.

        Parameters
        ----------
        curve : Bunch or dict
        ax : Axes, default=None
        **kwargs :
            Passed to :meth:`plot`.

        Returns
        -------
        StepsCurveDisplay

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> from sklearn_snn.plotting import StepsCurveDisplay
        >>> d = StepsCurveDisplay.from_curve({"steps": [1, 2], "accuracy": [0.5, 0.7], "ann_accuracy": 0.8})
        >>> float(d.ann_line_.get_ydata()[0])
        0.8
        """
        return cls(curve["steps"], curve["accuracy"], curve.get("ann_accuracy")).plot(ax=ax, **kwargs)


# ------------------------------------------------------------------------------------------
class ReceptiveFieldDisplay:
    """Learned input weights of each neuron drawn as images (e.g. STDP receptive fields).

    Parameters
    ----------
    weights : ndarray of shape (n_neurons, n_features)
    image_shape : tuple of int or None, default=None
        Shape of one field, e.g. ``(8, 8)``; None uses a square when ``n_features`` is a
        perfect square, else ``(1, n_features)``.

    Attributes
    ----------
    images_ : list of matplotlib AxesImage
        One per drawn neuron.
    axes_ : ndarray of matplotlib Axes
        The grid (unused cells are switched off).
    figure_ : matplotlib Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from sklearn_snn.plotting import ReceptiveFieldDisplay
    >>> disp = ReceptiveFieldDisplay(np.random.rand(6, 16)).plot()
    >>> len(disp.images_), disp.images_[0].get_array().shape
    (6, (4, 4))
    """

    def __init__(self, weights, image_shape=None):
        self.weights = np.asarray(weights, dtype=float)
        if self.weights.ndim != 2:
            raise ValueError(f"weights must be 2D (n_neurons, n_features), got shape {self.weights.shape}.")
        F = self.weights.shape[1]
        if image_shape is None:
            side = int(round(np.sqrt(F)))
            image_shape = (side, side) if side * side == F else (1, F)
        if int(np.prod(image_shape)) != F:
            raise ValueError(f"image_shape={tuple(image_shape)} does not hold the {F} weights of a neuron.")
        self.image_shape = tuple(int(s) for s in image_shape)

    def plot(self, ax=None, *, max_fields=64, n_cols=None, cmap="viridis", **kwargs):
        """Draw a grid of fields.

        Parameters
        ----------
        ax : array of matplotlib Axes, default=None
            At least as many Axes as fields drawn; None makes a new figure.
        max_fields : int, default=64
            Draw the first ``max_fields`` neurons.
        n_cols : int or None, default=None
            Columns of the grid (about square when None).
        cmap : str, default='viridis'
        **kwargs :
            Passed to :meth:`~matplotlib.axes.Axes.imshow`.

        Returns
        -------
        self
        """
        check_matplotlib("ReceptiveFieldDisplay.plot")
        import matplotlib.pyplot as plt

        n = min(int(max_fields), self.weights.shape[0])
        n_cols = int(n_cols or int(np.ceil(np.sqrt(n))))
        n_rows = int(np.ceil(n / n_cols))
        if ax is None:
            fig, axes = plt.subplots(n_rows, n_cols, squeeze=False, figsize=(1.2 * n_cols + 0.5, 1.2 * n_rows + 0.5),
                                     layout="constrained")
        else:
            axes = np.atleast_2d(np.asarray(ax, dtype=object))
            if axes.size < n:
                raise ValueError(f"ReceptiveFieldDisplay needs {n} Axes, got {axes.size}.")
            fig = axes.flat[0].figure
        vmin, vmax = float(self.weights[:n].min()), float(self.weights[:n].max())
        self.images_ = []
        for k, a in enumerate(axes.flat):
            a.set_xticks([])
            a.set_yticks([])
            if k < n:
                im = a.imshow(self.weights[k].reshape(self.image_shape), cmap=cmap, vmin=vmin, vmax=vmax,
                              **kwargs)
                self.images_.append(im)
            else:
                a.set_axis_off()
        self.axes_, self.ax_, self.figure_ = axes, axes.flat[0], fig
        return self

    @classmethod
    def from_estimator(cls, estimator, *, image_shape=None, ax=None, tiled=False, **kwargs):
        """Draw ``estimator.learned_weights_`` (one row per neuron).

        Parameters
        ----------
        estimator : fitted estimator with ``learned_weights_`` (n_neurons, n_features)
            Such as ``STDPTransformer``; a Pipeline or search ending in one is accepted.
        image_shape : tuple of int or None, default=None
        ax : array of Axes (one Axes with ``tiled=True``), default=None
        tiled : bool, default=False
            Draw all fields tiled into one image on one Axes with the estimator module's own
            ``plot_receptive_fields(estimator, image_shape, ax=ax, **kwargs)`` (e.g.
            :func:`sklearn_snn.stdp.plot_receptive_fields`); then ``images_`` holds that one
            image and ``axes_`` that Axes.
        **kwargs :
            Passed to :meth:`plot` (or to ``plot_receptive_fields``).

        Returns
        -------
        ReceptiveFieldDisplay

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> import numpy as np
        >>> from sklearn_snn.plotting import ReceptiveFieldDisplay
        >>> class Fitted:                      # any estimator with learned_weights_
        ...     learned_weights_ = np.eye(4)
        >>> len(ReceptiveFieldDisplay.from_estimator(Fitted(), image_shape=(2, 2)).images_)
        4
        """
        from ..metrics import final_estimator

        est, _ = final_estimator(estimator)
        W = getattr(est, "learned_weights_", None)
        if W is None:
            raise TypeError(f"{type(est).__name__} has no learned_weights_; ReceptiveFieldDisplay needs a fitted "
                            "estimator with learned_weights_ of shape (n_neurons, n_features).")
        W = W.detach().cpu().numpy() if hasattr(W, "detach") else np.asarray(W)
        disp = cls(W, image_shape)
        if not tiled:
            return disp.plot(ax=ax, **kwargs)
        import importlib

        check_matplotlib("ReceptiveFieldDisplay.from_estimator")
        plot_fn = getattr(importlib.import_module(type(est).__module__), "plot_receptive_fields", None)
        if plot_fn is None:
            raise TypeError(f"tiled=True needs a plot_receptive_fields function beside {type(est).__name__}.")
        ax = plot_fn(est, disp.image_shape, ax=ax, **kwargs)
        disp.images_ = list(ax.images)
        disp.axes_, disp.ax_, disp.figure_ = np.array([[ax]], dtype=object), ax, ax.figure
        return disp


# ------------------------------------------------------------------------------------------
class _CurveDisplay:
    """Shared plotting of one or more named curves against an iteration axis."""

    _xlabel = "iteration"
    _ylabel = "value"

    def _draw(self, ax, curves, caller, **kwargs):
        fig, (ax,) = get_axes(ax, caller)
        self.lines_ = []
        for name, values in curves.items():
            v = np.asarray(values, dtype=float)
            (line,) = ax.plot(np.arange(1, v.size + 1), v, label=name, **kwargs)
            self.lines_.append(line)
        ax.set_xlabel(self._xlabel)
        ax.set_ylabel(self._ylabel)
        if len(curves) > 1:
            ax.legend(loc="best")
        self.ax_, self.figure_ = ax, fig
        return ax


class FitnessCurveDisplay(_CurveDisplay):
    """Fitness per generation of an evolutionary search.

    Parameters
    ----------
    fitness : array-like of shape (n_generations,) or (n_generations, k), or dict
        One curve, ``k`` curves (columns named ``labels``), or a dict name -> curve (e.g.
        ``{'best': ..., 'mean': ...}``).
    labels : list of str, default=None

    Attributes
    ----------
    lines_ : list of matplotlib Line2D
        One per curve; the x data are the generations 1, 2, ...
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn_snn.plotting import FitnessCurveDisplay
    >>> disp = FitnessCurveDisplay({"best": [0.2, 0.5, 0.7], "mean": [0.1, 0.3, 0.5]}).plot()
    >>> len(disp.lines_)
    2
    """

    _xlabel = "generation"
    _ylabel = "fitness"

    def __init__(self, fitness, labels=None):
        if isinstance(fitness, dict):
            self.curves = {str(k): np.asarray(v, dtype=float) for k, v in fitness.items()}
        else:
            f = np.asarray(fitness, dtype=float)
            if f.ndim == 1:
                self.curves = {(labels or ["fitness"])[0]: f}
            elif f.ndim == 2:
                names = labels or [f"fitness_{i}" for i in range(f.shape[1])]
                self.curves = {names[i]: f[:, i] for i in range(f.shape[1])}
            else:
                raise ValueError(f"fitness must be 1D, 2D or a dict, got shape {f.shape}.")

    def plot(self, ax=None, **kwargs):
        """Draw the curves.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
        **kwargs :
            Passed to :meth:`~matplotlib.axes.Axes.plot`.

        Returns
        -------
        self
        """
        self._draw(ax, self.curves, "FitnessCurveDisplay.plot", **kwargs)
        return self

    @classmethod
    def from_estimator(cls, estimator, *, ax=None, **kwargs):
        """Draw ``estimator.fitness_curve_`` (e.g. of ``EvolvedSNN``).

        Parameters
        ----------
        estimator : fitted estimator with ``fitness_curve_``
        ax : Axes, default=None
        **kwargs :
            Passed to :meth:`plot`.

        Returns
        -------
        FitnessCurveDisplay

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> from sklearn_snn.plotting import FitnessCurveDisplay
        >>> class Fitted:
        ...     fitness_curve_ = [0.1, 0.4, 0.6]
        >>> FitnessCurveDisplay.from_estimator(Fitted()).lines_[0].get_ydata().tolist()
        [0.1, 0.4, 0.6]
        """
        from ..metrics import final_estimator

        est, _ = final_estimator(estimator)
        curve = getattr(est, "fitness_curve_", None)
        if curve is None:
            raise TypeError(f"{type(est).__name__} has no fitness_curve_; FitnessCurveDisplay needs a fitted "
                            "evolutionary estimator.")
        return cls(curve).plot(ax=ax, **kwargs)


class LossCurveDisplay(_CurveDisplay):
    """Training loss per epoch and, when recorded, the validation score on a second axis.

    Parameters
    ----------
    loss_curve : array-like of shape (n_epochs,)
    validation_scores : array-like of shape (n_epochs,) or None, default=None

    Attributes
    ----------
    loss_line_ : matplotlib Line2D
    validation_line_ : matplotlib Line2D or None
    lines_ : list of matplotlib Line2D
        All curves drawn.
    ax_ : matplotlib Axes
        The loss axis.
    ax_validation_ : matplotlib Axes or None
        The twin axis of the validation score.
    figure_ : matplotlib Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn_snn.plotting import LossCurveDisplay
    >>> disp = LossCurveDisplay([1.0, 0.6, 0.4], [0.5, 0.7, 0.8]).plot()
    >>> disp.validation_line_.get_ydata().tolist()
    [0.5, 0.7, 0.8]
    """

    _xlabel = "epoch"
    _ylabel = "training loss"

    def __init__(self, loss_curve, validation_scores=None):
        self.loss_curve = np.asarray(loss_curve, dtype=float)
        self.validation_scores = None if validation_scores is None else np.asarray(validation_scores, dtype=float)

    def plot(self, ax=None, **kwargs):
        """Draw the curves.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
        **kwargs :
            Passed to :meth:`~matplotlib.axes.Axes.plot` for the loss.

        Returns
        -------
        self
        """
        ax = self._draw(ax, {"training loss": self.loss_curve}, "LossCurveDisplay.plot", **kwargs)
        self.loss_line_ = self.lines_[0]
        self.validation_line_ = self.ax_validation_ = None
        if self.validation_scores is not None and self.validation_scores.size:
            ax2 = ax.twinx()
            v = self.validation_scores
            (self.validation_line_,) = ax2.plot(np.arange(1, v.size + 1), v, color="C1", label="validation score")
            ax2.set_ylabel("validation score")
            self.lines_.append(self.validation_line_)
            self.ax_validation_ = ax2
            ax.legend(self.lines_, [ln.get_label() for ln in self.lines_], loc="center right")
        return self

    @classmethod
    def from_estimator(cls, estimator, *, ax=None, **kwargs):
        """Draw ``loss_curve_`` and ``validation_scores_`` of a fitted estimator.

        Parameters
        ----------
        estimator : fitted estimator with ``loss_curve_``
            Any of the package's gradient estimators (or an ``MLPClassifier``).
        ax : Axes, default=None
        **kwargs :
            Passed to :meth:`plot`.

        Returns
        -------
        LossCurveDisplay

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> from sklearn.datasets import load_iris
        >>> from sklearn_snn import SurrogateSNNClassifier
        >>> from sklearn_snn.plotting import LossCurveDisplay
        >>> X, y = load_iris(return_X_y=True)
        >>> clf = SurrogateSNNClassifier((8,), max_iter=3, random_state=0).fit(X, y)
        >>> len(LossCurveDisplay.from_estimator(clf).loss_line_.get_xdata())
        3
        """
        from ..metrics import final_estimator

        est, _ = final_estimator(estimator)
        check_is_fitted(est)
        if getattr(est, "loss_curve_", None) is None:
            raise TypeError(f"{type(est).__name__} has no loss_curve_.")
        return cls(est.loss_curve_, getattr(est, "validation_scores_", None)).plot(ax=ax, **kwargs)


# ------------------------------------------------------------------------------------------
class SurrogateDisplay:
    """Shapes of surrogate derivatives ``d(x; slope)`` (``x`` = membrane minus threshold).

    Parameters
    ----------
    x : ndarray
        Points where the derivatives were evaluated.
    derivatives : dict of str to ndarray
        Name -> derivative values at ``x``.
    slope : float

    Attributes
    ----------
    lines_ : dict of str to matplotlib Line2D
        One line per surrogate.
    step_line_ : matplotlib Line2D or None
        The Heaviside step of the forward pass (``show_step=True``).
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn_snn.plotting import SurrogateDisplay
    >>> disp = SurrogateDisplay.from_names(["fast_sigmoid", "triangle"], slope=2.0)
    >>> sorted(disp.lines_)
    ['fast_sigmoid', 'triangle']
    """

    def __init__(self, x, derivatives, slope):
        self.x = np.asarray(x)
        self.derivatives = {k: np.asarray(v) for k, v in derivatives.items()}
        self.slope = slope

    def plot(self, ax=None, *, show_step=False, **kwargs):
        """Draw the derivatives.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
        show_step : bool, default=False
            Also draw the forward Heaviside step (dotted).
        **kwargs :
            Passed to :meth:`~matplotlib.axes.Axes.plot`.

        Returns
        -------
        self
        """
        fig, (ax,) = get_axes(ax, "SurrogateDisplay.plot")
        self.lines_ = {}
        for name, d in self.derivatives.items():
            (self.lines_[name],) = ax.plot(self.x, d, label=name, **kwargs)
        self.step_line_ = None
        if show_step:
            (self.step_line_,) = ax.plot(self.x, (self.x >= 0).astype(float), "k:", label="spike (forward)")
        ax.set_xlabel("membrane potential - threshold")
        ax.set_ylabel(f"pseudo-derivative (slope={self.slope:g})")
        ax.legend(loc="upper right", fontsize="small")
        self.ax_, self.figure_ = ax, fig
        return self

    @classmethod
    def from_names(cls, names=None, *, slope=5.0, x_range=(-2.0, 2.0), n_points=401, ax=None, **kwargs):
        """Evaluate surrogates by name (or callable) from :mod:`sklearn_snn._core.surrogate`.

        Parameters
        ----------
        names : list of str or callable, default=None
            None draws every registered surrogate.
        slope : float, default=5.0
        x_range : (float, float), default=(-2.0, 2.0)
        n_points : int, default=401
        ax : Axes, default=None
        **kwargs :
            Passed to :meth:`plot`.

        Returns
        -------
        SurrogateDisplay

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> from sklearn_snn.plotting import SurrogateDisplay
        >>> disp = SurrogateDisplay.from_names(slope=5.0)
        >>> len(disp.lines_) >= 7
        True
        """
        import torch

        from .._core.surrogate import SURROGATES, get_surrogate

        names = list(SURROGATES) if names is None else list(names)
        x = torch.linspace(float(x_range[0]), float(x_range[1]), int(n_points), dtype=torch.float64)
        ders = {}
        for n in names:
            label = n if isinstance(n, str) else getattr(n, "__name__", "custom")
            ders[label] = get_surrogate(n)(x, float(slope)).detach().numpy() * np.ones(x.shape)
        return cls(x.numpy(), ders, slope).plot(ax=ax, **kwargs)

    @classmethod
    def from_estimator(cls, estimator, *, x_range=(-2.0, 2.0), ax=None, **kwargs):
        """The surrogate an estimator trains with (its ``surrogate`` and ``surrogate_slope``).

        Parameters
        ----------
        estimator : estimator with ``surrogate`` and ``surrogate_slope`` parameters
            Fitted or not (only the parameters are read).
        x_range : (float, float), default=(-2.0, 2.0)
        ax : Axes, default=None
        **kwargs :
            Passed to :meth:`plot`.

        Returns
        -------
        SurrogateDisplay

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> from sklearn_snn import SurrogateSNNClassifier
        >>> from sklearn_snn.plotting import SurrogateDisplay
        >>> disp = SurrogateDisplay.from_estimator(SurrogateSNNClassifier(surrogate="arctan"))
        >>> list(disp.lines_), disp.slope
        (['arctan'], 5.0)
        """
        from ..metrics import final_estimator

        est, _ = final_estimator(estimator)
        if not hasattr(est, "surrogate"):
            raise TypeError(f"{type(est).__name__} has no surrogate parameter.")
        return cls.from_names([est.surrogate], slope=getattr(est, "surrogate_slope", 5.0), x_range=x_range, ax=ax,
                              **kwargs)
