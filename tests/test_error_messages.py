"""Clear error messages for common mistakes (issue #26): each is raised before any work and says
what is wrong and what to do."""


import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from sklearn_snn import ConvertedSNN, SurrogateSNNClassifier
from sklearn_snn.meta import MetaSNNClassifier, SNNArchitectureSearch
from sklearn_snn.metrics import spike_stats
from sklearn_snn.model_selection import OptunaSearchCV

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

TINY = dict(hidden_layer_sizes=(8,), n_steps=4, max_iter=1, random_state=0)


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return X[::5], y[::5]  # 30 samples, 3 classes


@pytest.fixture(scope="module")
def fitted(iris):
    return SurrogateSNNClassifier(**TINY).fit(*iris)


class _NeverFit(ClassifierMixin, BaseEstimator):
    """Fails loudly if a search ever gets as far as fitting a fold."""

    def __init__(self, c=1.0):
        self.c = c

    def fit(self, X, y):
        raise AssertionError("a fold was fitted before the error")


# --------------------------------------------------------------------------- 1. energy_per_op
def test_spike_stats_energy_per_op_float_says_expected_form(fitted, iris):
    with pytest.raises(TypeError, match=r"energy_per_op must be a dict \{'mac': joules, 'ac': joules\}"):
        spike_stats(fitted, iris[0], energy_per_op=0.9)


@pytest.mark.parametrize("bad", [-1e-12, float("nan"), float("inf"), "cheap"])
def test_spike_stats_energy_per_op_refuses_negative_or_non_finite(fitted, iris, bad):
    with pytest.raises(ValueError, match=r"energy_per_op\['mac'\] must be a finite number >= 0"):
        spike_stats(fitted, iris[0], energy_per_op={"mac": bad, "ac": 0.9e-12})


def test_spike_stats_energy_per_op_valid_still_works(fitted, iris):
    stats = spike_stats(fitted, iris[0], energy_per_op={"mac": 2e-12, "ac": 0})
    assert stats.energy_per_op == {"mac": 2e-12, "ac": 0.0}
    assert stats.ann_energy > 0


# --------------------------------------------------------------------------- 2. storage
def test_search_storage_missing_folder_named(iris, tmp_path):
    missing = tmp_path / "missing" / "dir"
    search = OptunaSearchCV(_NeverFit(), {"c": [1.0]}, n_trials=1, cv=2, error_score="raise",
                            storage=f"sqlite:///{missing / 'x.db'}")
    with pytest.raises(ValueError, match=r"folder .*missing.dir.* does not exist.*create it"):
        search.fit(*iris)
    assert not missing.exists()


def test_search_storage_missing_folder_relative_and_journal(iris, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for storage in ("sqlite:///missing/dir/x.db", "missing/dir/x.db", "missing/x.log"):
        search = OptunaSearchCV(_NeverFit(), {"c": [1.0]}, n_trials=1, cv=2, error_score="raise",
                                storage=storage)
        with pytest.raises(ValueError, match=r"folder 'missing.*' .*does not exist"):
            search.fit(*iris)


def test_search_storage_bare_path_not_a_url(iris, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    search = OptunaSearchCV(_NeverFit(), {"c": [1.0]}, n_trials=1, cv=2, storage="mystudy")
    with pytest.raises(ValueError, match=r"not a database URL.*'sqlite:///mystudy\.db'.*JournalStorage"):
        search.fit(*iris)


def test_search_storage_db_path_becomes_sqlite(iris, tmp_path, monkeypatch):
    import optuna

    monkeypatch.chdir(tmp_path)
    OptunaSearchCV(LogisticRegression(), {"C": [1.0]}, n_trials=1, cv=2, storage="x.db",
                   study_name="s", refit=False).fit(*iris)
    assert (tmp_path / "x.db").is_file()
    assert len(optuna.load_study(study_name="s", storage="sqlite:///x.db").trials) == 1


# --------------------------------------------------------------------------- 3. ConvertedSNN 3D
def test_converted_snn_3d_message_not_contradictory(iris):
    X3 = np.zeros((30, 4, 4))
    with pytest.raises(ValueError, match=r"ConvertedSNN takes 2D input \(n_samples, n_features\)") as exc:
        ConvertedSNN(hidden_layer_sizes=(8,), n_steps=4, max_iter=1, device="cpu").fit(X3, np.arange(30) % 2)
    msg = str(exc.value)
    assert "or 3D" not in msg and "input_shape=(4, 4)" in msg and "X.reshape(len(X), -1)" in msg
    snn = ConvertedSNN(hidden_layer_sizes=(8,), n_steps=4, max_iter=1, calibration_size=8,
                       device="cpu", random_state=0).fit(*iris)
    with pytest.raises(ValueError, match=r"ConvertedSNN takes 2D input.*got 3D input of shape \(2, 1, 4\)"):
        snn.predict(iris[0][:2, None, :])


# --------------------------------------------------------------------------- 4. callbacks
def test_meta_fit_accepts_list_of_callbacks(iris):
    X, y = iris
    calls = []
    cb_a = lambda est, epoch, info: calls.append("a")  # noqa: E731
    cb_b = lambda est, epoch, info: calls.append("b")  # noqa: E731
    meta = MetaSNNClassifier(**TINY, n_meta_iter=1, n_adapt_steps=1, meta_batch_size=1).meta_fit([(X, y)])
    meta.fit(X, y, epoch_callback=[cb_a, cb_b])
    assert calls == ["a", "b"]
    meta.fit(X, y, epoch_callback=cb_a)
    assert calls == ["a", "b", "a"]
    with pytest.raises(TypeError, match=r"epoch_callback must be a callable .* or a list of them; got str"):
        meta.fit(X, y, epoch_callback=[cb_a, "b"])
    with pytest.raises(TypeError, match=r"epoch_callback must be a callable"):
        MetaSNNClassifier(**TINY).fit(X, y, epoch_callback=3)


# --------------------------------------------------------------------------- 5. meta_fit layouts
def test_meta_fit_tasks_with_different_feature_counts(iris):
    X, y = iris
    meta = MetaSNNClassifier(**TINY, n_meta_iter=1, n_adapt_steps=1)
    tasks = [(X, y), (X, y), (X[:, :3], y)]
    with pytest.raises(ValueError, match=r"tasks\[2\] has 3 features but tasks\[0\] has 4"):
        meta.meta_fit(tasks)
    assert not hasattr(meta, "meta_module_")
    # an iterator is checked as drawn
    with pytest.raises(ValueError, match=r"task #1 drawn from tasks has 3 features but task #0 drawn from tasks has 4"):
        meta.meta_fit(iter(tasks[1:]))


# --------------------------------------------------------------------------- 6. raster sample
def test_spike_raster_sample_out_of_range(fitted, iris):
    import matplotlib

    matplotlib.use("Agg")
    from sklearn_snn.plotting import MembraneTraceDisplay, SpikeRasterDisplay

    X3 = iris[0][:3]
    with pytest.raises(IndexError, match=r"sample=10 is out of range for X with 3 samples.*0 to 2"):
        SpikeRasterDisplay.from_estimator(fitted, X3, sample=10)
    with pytest.raises(IndexError, match=r"sample=-4 is out of range"):
        MembraneTraceDisplay.from_estimator(fitted, X3, sample=-4)
    with pytest.raises(TypeError, match=r"sample must be an integer"):
        SpikeRasterDisplay.from_estimator(fitted, X3, sample=1.5)
    assert SpikeRasterDisplay.from_estimator(fitted, X3, sample=-1).layer_names == ["hidden_0"]


# --------------------------------------------------------------------------- 7. empty widths
@pytest.mark.parametrize("cost", [None, "synops"])
def test_architecture_search_empty_widths(iris, cost):
    search = SNNArchitectureSearch(SurrogateSNNClassifier(max_iter=1), widths=(), n_steps=(4,), n_trials=1,
                                   cv=2, cost=cost)
    with pytest.raises(ValueError, match=r"widths must hold at least one layer width"):
        search.fit(*iris)


def test_architecture_search_bad_choices():
    with pytest.raises(ValueError, match=r"widths must hold .*positive integers.*got \(8, 0\)"):
        SNNArchitectureSearch(widths=(8, 0)).search_space()
    with pytest.raises(ValueError, match=r"neurons must hold at least one"):
        SNNArchitectureSearch(neurons=[]).search_space()
