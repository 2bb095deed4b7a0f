"""What ``sklearn_snn.load`` will and will not construct: crafted model files (classes outside the
allowlist, the CLI, callbacks, unknown or invalid parameters, undeclared or mistyped attributes,
weights that do not fit), files of other formats, devices, and the states the safe format must
keep (every fitted state of every estimator, pipelines, meta-learning)."""
from __future__ import annotations

import io
import os
import pickle
import sys
import warnings

import joblib
import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.svm import SVC

import sklearn_snn
from sklearn_snn import SurrogateSNNClassifier, load, save
from sklearn_snn.persistence import FORMAT, declared_attributes, model_classes
from sklearn_snn.utils import all_estimators, fast_instance

sys.path.insert(0, os.path.dirname(__file__))
from test_reliability import data2d, data3d, fit, fitted, kind, outputs, target  # noqa: E402

ESTIMATORS = all_estimators()
IDS = [name for name, _ in ESTIMATORS]


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", UserWarning)
        yield


def _blob(est, tmp_path):
    save(est, tmp_path / "m.snn")
    return torch.load(tmp_path / "m.snn", weights_only=True)


def _write(blob, path):
    torch.save(blob, path)
    return path


# ------------------------------------------------------------------------------------------------
# crafted files: nothing outside the allowlist is built, nothing of the package runs
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [
    "sklearn_snn.cli.main", "sklearn_snn.__main__.main", "sklearn_snn._cli_tune.main",
    "sklearn_snn.callbacks.Checkpoint", "sklearn_snn.datasets.make_randman", "sklearn_snn.base.BaseSNN",
    "sklearn_snn.model_selection.OptunaSearchCV", "sklearn_snn.meta.SNNArchitectureSearch",
    "os.system", "builtins.eval", "sklearn.svm.SVC", "sklearn.preprocessing.StandardScaler",
    "SurrogateSNNClassifier", "sklearn_snn.surrogate.SurrogateSNNClassifier.fit",
])
def test_load_refuses_every_class_outside_the_allowlist(name, tmp_path, monkeypatch):
    import sklearn_snn.cli as cli

    called = []
    monkeypatch.setattr(cli, "main", lambda *a, **k: called.append((a, k)))
    out = tmp_path / "victim.txt"
    out.write_text("precious")
    blob = {"format": FORMAT, "version": sklearn_snn.__version__, "class": name,
            "params": {"argv": ["tune", "digits", "--output", str(out)]}, "attributes": {}, "modules": {}}
    with pytest.raises(ValueError, match="Refusing to load class"):
        load(_write(blob, tmp_path / "evil.snn"))
    assert not called and out.read_text() == "precious"


def test_the_allowlist_is_exactly_the_package_estimators():
    assert sorted(c.__name__ for c in model_classes().values()) == sorted(n for n, _ in ESTIMATORS)


def test_load_refuses_unknown_and_invalid_parameters_before_anything_runs(tmp_path, monkeypatch):
    est = fitted(SurrogateSNNClassifier)
    changes = [({"argv": ["benchmark"]}, "no parameter"), ({"n_steps": -3}, "invalid parameters"),
               ({"hidden_layer_sizes": "x"}, "invalid parameters"), ({"tau_mem": "1e9"}, "invalid")]
    blobs = [_blob(est, tmp_path) for _ in changes]
    built = []
    orig = SurrogateSNNClassifier._rebuild_module
    monkeypatch.setattr(SurrogateSNNClassifier, "_rebuild_module",
                        lambda self, name="module_": built.append(name) or orig(self, name))
    for blob, (change, match) in zip(blobs, changes):
        blob["params"].update(change)
        with pytest.raises(ValueError, match="not an sklearn-snn model file.*" + match):
            load(_write(blob, tmp_path / "bad.snn"))
    assert not built, "a network was built from a file with bad parameters"


@pytest.mark.parametrize("attribute, value, match", [
    ("fit", 1, "declares no fitted attribute 'fit'"),
    ("__class__", "x", "declares no fitted attribute"),
    ("_generator", 3, "declares no fitted attribute"),
    ("predict_proba", "x", "declares no fitted attribute"),
    ("n_features_in_", "4", "should be int"),
    ("n_iter_", 2.5, "should be int"),
    ("classes_", {"__dict__": {"a": 1}}, "should be labels"),
    ("loss_curve_", ["a", "b"], "should be floats"),
    ("input_offset_", {"__ndarray__": torch.zeros(7, dtype=torch.float64), "dtype": "float64"}, r"shape \(7,\)"),
    ("input_offset_", {"__ndarray__": torch.zeros(4), "dtype": "object"}, "unsupported dtype"),
])
def test_load_refuses_undeclared_or_mistyped_attributes(attribute, value, match, tmp_path):
    blob = _blob(fitted(SurrogateSNNClassifier), tmp_path)
    blob["attributes"][attribute] = value
    with pytest.raises(ValueError, match=match):
        load(_write(blob, tmp_path / "bad.snn"))


def test_load_refuses_weights_that_do_not_fit_the_network(tmp_path):
    est = fitted(SurrogateSNNClassifier)
    blob = _blob(est, tmp_path)
    key = next(iter(blob["modules"]["module_"]))
    blob["modules"]["module_"][key] = torch.zeros(3, 3)
    with pytest.raises(ValueError, match="weights of 'module_' do not fit"):
        load(_write(blob, tmp_path / "shape.snn"))
    blob = _blob(est, tmp_path)
    blob["modules"]["module_"]["extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match="do not fit"):
        load(_write(blob, tmp_path / "extra.snn"))
    blob = _blob(est, tmp_path)
    blob["modules"]["optimizer_"] = {}
    with pytest.raises(ValueError, match="no torch module"):
        load(_write(blob, tmp_path / "module.snn"))
    blob = _blob(est, tmp_path)
    blob["modules"]["module_"] = {"weight": "not a tensor"}
    with pytest.raises(ValueError, match="table of tensors"):
        load(_write(blob, tmp_path / "tensors.snn"))


def test_load_refuses_files_of_other_formats(tmp_path):
    est = fitted(SurrogateSNNClassifier)
    cases = {}
    (tmp_path / "empty.snn").write_bytes(b"")
    cases["empty"] = tmp_path / "empty.snn"
    (tmp_path / "text.snn").write_text("hello, this is not a model\n")
    cases["text"] = tmp_path / "text.snn"
    joblib.dump(est, tmp_path / "model.joblib")
    cases["joblib"] = tmp_path / "model.joblib"
    save(est, tmp_path / "good.snn")
    data = (tmp_path / "good.snn").read_bytes()
    (tmp_path / "truncated.snn").write_bytes(data[: len(data) // 2])
    cases["truncated"] = tmp_path / "truncated.snn"
    cases["weights only"] = _write({"weights": torch.zeros(2)}, tmp_path / "weights.snn")
    cases["a list"] = _write([1, 2, 3], tmp_path / "list.snn")
    cases["no class"] = _write({"format": FORMAT, "version": sklearn_snn.__version__}, tmp_path / "noclass.snn")
    cases["bad tables"] = _write({"format": FORMAT, "version": sklearn_snn.__version__,
                                  "class": "sklearn_snn.surrogate.SurrogateSNNClassifier", "params": [1]},
                                 tmp_path / "tables.snn")
    for what, path in cases.items():
        with pytest.raises((ValueError, pickle.UnpicklingError), match="not an sklearn-snn model file") as info:
            load(path)
        assert not isinstance(info.value, (EOFError, KeyError)), what
    with pytest.raises(FileNotFoundError, match="No model file"):
        load(tmp_path / "missing.snn")
    with pytest.raises(IsADirectoryError, match="folder"):
        load(tmp_path)


def test_load_on_a_cuda_device_without_cuda_says_so(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    save(fitted(SurrogateSNNClassifier), tmp_path / "m.snn")
    with pytest.raises(ValueError, match="CUDA is not available"):
        load(tmp_path / "m.snn", device="cuda")


def test_load_of_a_file_object_round_trips():
    X, _ = data2d()
    est = fitted(SurrogateSNNClassifier)
    buf = io.BytesIO()
    save(est, buf)
    buf.seek(0)
    assert np.array_equal(outputs(load(buf), X), outputs(est, X))


# ------------------------------------------------------------------------------------------------
# what the safe format keeps: every estimator in every fitted state
# ------------------------------------------------------------------------------------------------
def _states(cls):
    """(label, fitted estimator, X) for each fitted state the estimator can be in."""
    X, y = data2d()
    y = target(cls, y)
    yield "fit", fitted(cls), X
    if kind(cls) != "transformer" or True:
        est = fast_instance(cls)
        if hasattr(est, "partial_fit"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if kind(cls) == "classifier":
                    est.partial_fit(X, y, classes=np.unique(y))
                else:
                    est.partial_fit(X, y) if kind(cls) == "regressor" else est.partial_fit(X)
                est.partial_fit(X, y) if kind(cls) != "transformer" else est.partial_fit(X)
            yield "partial_fit", est, X
    if "warm_start" in cls().get_params():
        est = fit(fast_instance(cls, warm_start=True), X, y)
        yield "warm_start", fit(est, X, y), X
    if kind(cls) == "classifier":
        est = fit(fast_instance(cls), X, y)
        keep = y < 2   # refit on another number of classes
        yield "refit on 2 classes", fit(est, X[keep], y[keep]), X
    X3, y3 = data3d()
    try:
        yield "3d", fit(fast_instance(cls), X3, target(cls, y3)), X3
    except ValueError:
        pass  # 2D-only estimators


@pytest.mark.parametrize("name, cls", ESTIMATORS, ids=IDS)
def test_every_fitted_state_round_trips_with_its_whole_state(name, cls, tmp_path):
    declared = declared_attributes(cls)
    torch_names = set(cls._torch_attributes)
    for label, est, X in _states(cls):
        learned = {k for k in vars(est) if k.endswith("_") and not k.startswith("__")}
        assert learned <= set(declared) | torch_names, (label, learned - set(declared) - torch_names)
        save(est, tmp_path / "m.snn")
        back = load(tmp_path / "m.snn")
        assert type(back) is cls
        for k in learned - torch_names:
            a, b = getattr(est, k), getattr(back, k)
            if isinstance(a, (np.ndarray, torch.Tensor)):
                assert np.array_equal(np.asarray(a), np.asarray(b)), (label, k)
            else:
                assert a == b or (a != a and b != b), (label, k, a, b)
        assert np.array_equal(outputs(back, X), outputs(est, X)), label


def test_pipelines_of_package_estimators_round_trip(tmp_path):
    from sklearn_snn import STDPTransformer

    X, y = data2d()
    pipes = [
        make_pipeline(MinMaxScaler(), fast_instance(STDPTransformer), LogisticRegression(max_iter=200)),
        make_pipeline(StandardScaler(), fast_instance(SurrogateSNNClassifier)),
    ]
    for pipe in pipes:
        pipe.fit(X, y)
        save(pipe, tmp_path / "p.snn")
        back = load(tmp_path / "p.snn")
        assert [type(s).__name__ for _, s in back.steps] == [type(s).__name__ for _, s in pipe.steps]
        assert np.array_equal(back.predict_proba(X), pipe.predict_proba(X))
    with pytest.raises(TypeError, match="does not store"):
        save(make_pipeline(StandardScaler(), SVC()).fit(X, y), tmp_path / "svc.snn")
    # a crafted pipeline naming a class outside the allowlist
    save(pipes[1], tmp_path / "p.snn")
    blob = torch.load(tmp_path / "p.snn", weights_only=True)
    blob["steps"][0][1]["class"] = "sklearn.svm.SVC"
    with pytest.raises(ValueError, match="Refusing to load class 'sklearn.svm.SVC'"):
        load(_write(blob, tmp_path / "evil.snn"))
    # a scikit-learn step is not a model file on its own
    blob = torch.load(tmp_path / "p.snn", weights_only=True)
    step = blob["steps"][0][1]
    with pytest.raises(ValueError, match="Refusing to load class"):
        load(_write({"format": FORMAT, "version": sklearn_snn.__version__, **step}, tmp_path / "step.snn"))


def test_meta_learner_saved_in_each_state(tmp_path):
    from sklearn_snn.meta import FewShotTaskSampler, MetaSNNClassifier

    train = FewShotTaskSampler(n_way=3, k_shot=3, n_query=3, classes=range(6), random_state=0)
    test = FewShotTaskSampler(n_way=5, k_shot=3, n_query=3, classes=range(5, 10), random_state=1)
    clf = MetaSNNClassifier((8,), n_steps=4, n_meta_iter=2, n_adapt_steps=2, random_state=0).meta_fit(train)
    # meta-fitted only: the meta-learned start is kept and adapts as before
    save(clf, tmp_path / "meta.snn")
    back = load(tmp_path / "meta.snn")
    ep = test.sample(random_state=0)
    a = clf.fit(ep.X_support, ep.y_support).predict_proba(ep.X_query)
    save(clf, tmp_path / "adapted.snn")   # meta-fitted on 3-way tasks, fitted on 5 classes
    b = back.fit(ep.X_support, ep.y_support).predict_proba(ep.X_query)
    assert np.array_equal(a, b)
    again = load(tmp_path / "adapted.snn")
    assert np.array_equal(again.predict_proba(ep.X_query), a)
    assert again.meta_n_way_ == 3 and len(again.classes_) == 5


@pytest.mark.parametrize("change", [{"hidden_layer_sizes": (5,)}, {"hidden_layer_sizes": (8, 8)},
                                    {"recurrent": True}])
def test_warm_start_with_another_architecture_is_refused(change, tmp_path):
    X, y = data2d()
    est = fit(fast_instance(SurrogateSNNClassifier, warm_start=True), X, y)
    est.set_params(**change)
    with pytest.raises(ValueError, match="another architecture.*warm_start=False"):
        est.fit(X, y)
    with pytest.raises(ValueError, match="another architecture"):
        est.partial_fit(X, y)
    # a file saved now would not load: save says so; with the parameters restored it saves and loads
    with pytest.raises(ValueError, match="no longer describe its fitted network"):
        save(est, tmp_path / "m.snn")
    est.set_params(hidden_layer_sizes=(8,), recurrent=False)
    save(est, tmp_path / "m.snn")
    assert np.array_equal(outputs(load(tmp_path / "m.snn"), X), outputs(est, X))
    assert fit(est.set_params(warm_start=False), X, y).n_iter_ >= 1
