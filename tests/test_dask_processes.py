"""A memory-mapped spike data set cross-validated and searched with joblib's Dask backend on
separate worker processes (issue #19, item 7): the scores equal one process's, and the workers
map the file instead of receiving a copy of the data."""

import sys
import warnings

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, cross_validate

from sklearn_snn import SurrogateSNNClassifier
from sklearn_snn.datasets import SharedMemmap, make_randman, open_shared_memmap

distributed = pytest.importorskip("distributed")
joblib = pytest.importorskip("joblib")
cloudpickle = pytest.importorskip("cloudpickle")

# the workers cannot import this test module by name: send its classes by value
cloudpickle.register_pickle_by_value(sys.modules[__name__])


class RecordingSNN(SurrogateSNNClassifier):
    """Records, while fitting in a Dask worker, which arrays the worker holds (scattered data)."""

    def fit(self, X, y, **kw):
        self.fit_input_type_ = type(X).__name__
        try:
            worker = distributed.get_worker()
        except ValueError:  # not in a worker
            self.worker_arrays_ = None
        else:
            self.worker_arrays_ = [(type(v).__name__, getattr(v, "filename", None), v.shape)
                                   for v in list(worker.data.values()) if isinstance(v, np.ndarray)]
        return super().fit(X, y, **kw)


# one torch thread everywhere, so the workers and this process compute the same floats
PARAMS = dict(hidden_layer_sizes=(16,), neuron="cuba", tau_mem=10.0, max_iter=30, learning_rate_init=0.01,
              random_state=0, torch_num_threads=1)


@pytest.fixture(scope="module")
def spike_file(tmp_path_factory):
    X, y = make_randman(n_samples=96, n_classes=2, n_units=10, n_steps=20, random_state=0)
    path = tmp_path_factory.mktemp("spikes") / "X.npy"
    np.save(path, X.astype(bool))
    return str(path), y


@pytest.fixture(scope="module")
def client():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(processes=True, n_workers=2, threads_per_worker=1,
                                           dashboard_address=None)
        c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def test_search_scores_equal_one_process(spike_file, client):
    path, y = spike_file
    X = open_shared_memmap(path)
    assert isinstance(X, SharedMemmap) and X.dtype == bool

    def search():
        return GridSearchCV(SurrogateSNNClassifier(**PARAMS), {"tau_syn": [5.0, 10.0]}, cv=3, n_jobs=2)

    with joblib.parallel_config(backend="dask"):
        dask_search = search().fit(X, y)
    one = GridSearchCV(SurrogateSNNClassifier(**PARAMS), {"tau_syn": [5.0, 10.0]}, cv=3, n_jobs=1)
    one.fit(np.asarray(X), y)  # in memory, one process
    np.testing.assert_allclose(dask_search.cv_results_["mean_test_score"], one.cv_results_["mean_test_score"],
                               rtol=0, atol=1e-12)
    np.testing.assert_array_equal(dask_search.predict(X), one.predict(X))
    assert dask_search.best_score_ > 0.65


def test_workers_map_the_file_instead_of_copying(spike_file, client):
    path, y = spike_file
    X = open_shared_memmap(path)
    with joblib.parallel_config(backend="dask"):
        res = cross_validate(RecordingSNN(**PARAMS), X, y, cv=2, return_estimator=True, n_jobs=2)
    for est in res["estimator"]:
        held = [a for a in est.worker_arrays_ if a[2] == X.shape]
        # the full set reached the worker (scattered once), as a map of the one file
        assert held and all(kind == "SharedMemmap" and fn == path for kind, fn, _ in held), held
    assert res["test_score"].mean() > 0.6

    # the control: an ordinary memmap arrives as an in-memory copy of the whole set
    plain = np.load(path, mmap_mode="r")
    with joblib.parallel_config(backend="dask"):
        res = cross_validate(RecordingSNN(**PARAMS), plain, y, cv=2, return_estimator=True, n_jobs=2)
    held = [a for est in res["estimator"] for a in est.worker_arrays_ if a[2] == X.shape]
    assert held and all(kind == "ndarray" for kind, _, _ in held), held
