"""The pruner of :class:`OptunaSearchCV` and the step numbering it reads."""

from __future__ import annotations

import math

import numpy as np
import optuna
from optuna.pruners import BasePruner
from optuna.trial import TrialState

__all__ = ["STEP_STRIDE", "LearningCurvePruner", "watches_epoch"]

#: Intermediate values of a pruned search are reported at step
#: ``fold * STEP_STRIDE + epoch`` (fold-major numbering), see
#: :class:`~sklearn_snn.model_selection.OptunaSearchCV`.
STEP_STRIDE = 10_000


class LearningCurvePruner(BasePruner):
    """Prune a trial whose learning curve trails the finished trials' curves.

    The pruner :class:`OptunaSearchCV` uses with ``pruning=True``.  It reads
    the intermediate values that the search reports at step
    ``fold * STEP_STRIDE + epoch`` and, after every epoch past the warm-up,
    compares the trial's best value so far *in the current fold* with the
    values the completed trials had at the same fold and epoch (a completed
    trial whose fold stopped earlier, e.g. by early stopping, contributes its
    last value in that fold).  The trial is pruned when it is below the
    given percentile of those values.

    Unlike :class:`optuna.pruners.PercentilePruner`, a value from an earlier
    fold never stands in for the current one (Optuna's pruners take the best
    value over *all* steps of a trial, so with fold-major steps a trial that
    finished fold 0 well could not be pruned early in fold 1), and the search
    scores the model only at the epochs the pruner looks at: with
    ``folds="first"`` (default) on the first fold after the warm-up epochs,
    so the later folds run exactly as without pruning.

    Parameters
    ----------
    percentile : float, default=25.0
        Keep the trials whose value is in the top ``percentile`` per cent of
        the completed trials at the same fold and epoch (Optuna's convention:
        ``50`` is the median rule).  Once a sampler such as TPE has found a
        good region most new trials are close to each other, so the median
        rule stops only the clearly bad ones; the top quarter stops the
        near-misses too, which is where a search spends most of its time.
    n_startup_trials : int, default=5
        No pruning until this many trials have completed.
    n_warmup_epochs : int, default=2
        Epochs (per fold) that are never pruned, and not scored by the
        search: the first check comes after epoch ``n_warmup_epochs + 1``.
    folds : {'first', 'all'}, default='first'
        Prune on the first fold only (the search then scores only that fold
        per epoch), or on every fold, where the value at step
        ``fold * STEP_STRIDE + epoch`` is the mean over folds ``0..fold``.
    n_min_trials : int, default=1
        Least number of completed trials with a value at the fold to judge.

    See Also
    --------
    OptunaSearchCV : Reports the learning curves this pruner reads.

    Examples
    --------
    >>> pruner = LearningCurvePruner(percentile=50.0, n_warmup_epochs=3)
    >>> pruner.percentile, pruner.folds
    (50.0, 'first')
    """

    def __init__(self, percentile=25.0, n_startup_trials=5, n_warmup_epochs=2,
                 folds="first", n_min_trials=1):
        if not 0.0 <= percentile <= 100.0:
            raise ValueError(f"percentile must be in [0, 100], got {percentile!r}.")
        if n_startup_trials < 0 or n_warmup_epochs < 0:
            raise ValueError("n_startup_trials and n_warmup_epochs must be >= 0.")
        if n_warmup_epochs >= STEP_STRIDE:
            raise ValueError(f"n_warmup_epochs must be < STEP_STRIDE={STEP_STRIDE}.")
        if folds not in ("first", "all"):
            raise ValueError(f"folds must be 'first' or 'all', got {folds!r}.")
        if n_min_trials < 1:
            raise ValueError(f"n_min_trials must be >= 1, got {n_min_trials!r}.")
        self.percentile = float(percentile)
        self.n_startup_trials = int(n_startup_trials)
        self.n_warmup_epochs = int(n_warmup_epochs)
        self.folds = folds
        self.n_min_trials = int(n_min_trials)

    def __repr__(self):
        return (f"LearningCurvePruner(percentile={self.percentile}, "
                f"n_startup_trials={self.n_startup_trials}, "
                f"n_warmup_epochs={self.n_warmup_epochs}, folds={self.folds!r}, "
                f"n_min_trials={self.n_min_trials})")

    def watches(self, fold, epoch):
        """Whether the pruner may stop a trial after ``epoch`` of ``fold``."""
        return (self.folds == "all" or fold == 0) and epoch >= self.n_warmup_epochs

    def prune(self, study, trial):
        """Judge ``trial`` at its last reported step (Optuna pruner protocol).

        Parameters
        ----------
        study : optuna.Study
            The study holding the completed trials to compare with.
        trial : optuna.trial.FrozenTrial
            The running trial.

        Returns
        -------
        prune : bool
        """
        step = trial.last_step
        if step is None:
            return False
        fold, epoch = divmod(step, STEP_STRIDE)
        if not self.watches(fold, epoch):
            return False
        completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if len(completed) < max(1, self.n_startup_trials):
            return False
        lo = fold * STEP_STRIDE
        maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
        mine = [v for s, v in trial.intermediate_values.items() if lo <= s <= step]
        mine = [v for v in mine if not math.isnan(v)]
        if not mine:
            return True
        current = max(mine) if maximize else min(mine)
        others = []
        for t in completed:
            steps = [s for s in t.intermediate_values if lo <= s <= step]
            if steps:
                others.append(t.intermediate_values[max(steps)])
        others = [v for v in others if not math.isnan(v)]
        if len(others) < self.n_min_trials:
            return False
        if maximize:
            return bool(current < np.percentile(others, 100.0 - self.percentile))
        return bool(current > np.percentile(others, self.percentile))


def watches_epoch(pruner, fold, epoch):
    """Whether the search must score the model after ``epoch`` of ``fold``.

    Any pruner but :class:`LearningCurvePruner` sees every epoch of every fold.
    """
    if isinstance(pruner, LearningCurvePruner):
        return pruner.watches(fold, epoch)
    return True
