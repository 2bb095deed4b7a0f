"""sklearn_snn.datasets.load_spike_hdf5: files in the SHD/SSC layout, written here and read back."""

import warnings

import numpy as np
import pytest

from sklearn_snn.datasets import load_spike_hdf5, make_randman_events
from sklearn_snn.preprocessing import EventBinner

h5py = pytest.importorskip("h5py")


def write_shd(path, events, labels, *, times_dtype=np.float32, units_dtype=np.uint16):
    """Write events (list of structured arrays with 't', 'channel') as SHD does: vlen datasets."""
    with h5py.File(path, "w") as f:
        n = len(events)
        t = f.create_dataset("spikes/times", (n,), dtype=h5py.vlen_dtype(times_dtype))
        u = f.create_dataset("spikes/units", (n,), dtype=h5py.vlen_dtype(units_dtype))
        for i, e in enumerate(events):  # writing the fixture, not library code
            t[i] = e["t"].astype(times_dtype)
            u[i] = e["channel"].astype(units_dtype)
        f.create_dataset("labels", data=np.asarray(labels, dtype=np.uint16))
        f.create_dataset("extra/speaker", data=np.zeros(n, dtype=np.uint16))  # SHD has more; ignored
    return path


@pytest.fixture
def shd_file(tmp_path):
    rng = np.random.default_rng(0)
    n = 23
    dt = np.dtype([("t", np.float64), ("channel", np.int64)])
    events = []
    for i in range(n):
        k = int(rng.integers(0, 60)) if i != 4 else 0  # sample 4 is empty
        e = np.empty(k, dtype=dt)
        e["t"] = np.sort(rng.uniform(0, 1.2, k)).astype(np.float32)  # what float32 storage keeps
        e["channel"] = rng.integers(0, 11, k)
        events.append(e)
    labels = rng.integers(0, 5, n)
    return write_shd(tmp_path / "shd_like.h5", events, labels), events, labels


def test_events_round_trip(shd_file):
    path, events, labels = shd_file
    ev, y = load_spike_hdf5(path, return_events=True)
    assert len(ev) == len(events) and np.array_equal(y, labels)
    for a, b in zip(ev, events):
        assert a.dtype.names == ("t", "channel")
        np.testing.assert_array_equal(a["t"], b["t"])
        np.testing.assert_array_equal(a["channel"], b["channel"])
    assert ev[4].shape == (0,)


@pytest.mark.parametrize("kw", [dict(n_steps=7), dict(bin_width=0.05), dict(n_steps=9, duration=1.5),
                                dict(bin_width=0.1, duration=1.0, n_units=12), dict(n_steps=5, channel_pool=3)])
def test_binned_equals_event_binner(shd_file, kw):
    """Chunked binning (chunk_size=4 < n) gives exactly what EventBinner gives on all events at once."""
    path, events, labels = shd_file
    binner_kw = {k: v for k, v in kw.items() if k != "n_units"}
    if "n_units" in kw:
        binner_kw["n_channels"] = kw["n_units"]
    binner = EventBinner(**binner_kw)
    with warnings.catch_warnings(record=True) as w_ref:
        warnings.simplefilter("always")
        ref = binner.fit_transform(events)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        X, y = load_spike_hdf5(path, chunk_size=4, **kw)
    assert X.dtype == np.uint8 and X.shape == ref.shape
    np.testing.assert_array_equal(X, ref)
    np.testing.assert_array_equal(y, labels)
    # drops are reported exactly when EventBinner drops, once, with the same count
    ref_drop = [str(x.message) for x in w_ref if "dropped" in str(x.message)]
    drop = [str(x.message) for x in w if "dropped" in str(x.message)]
    assert len(drop) == len(ref_drop) <= 1
    if ref_drop:
        assert drop[0].split("dropped")[1].split("event")[0] == ref_drop[0].split("dropped")[1].split("event")[0]


def test_dropped_events_are_counted(shd_file):
    path, events, _ = shd_file
    late = sum(int((e["t"] >= 0.5).sum()) for e in events)
    hit = sum(int((e["t"] >= 0.5).any()) for e in events)
    assert late > 0
    with pytest.warns(UserWarning, match=rf"dropped {late} event\(s\) in {hit} of 23 sample"):
        X, _ = load_spike_hdf5(path, bin_width=0.1, duration=0.5, chunk_size=5)
    assert X.sum() == sum(e.size for e in events) - late


def test_max_samples(shd_file):
    path, events, labels = shd_file
    X, y = load_spike_hdf5(path, n_steps=6, max_samples=8, chunk_size=3)
    ref = EventBinner(n_steps=6).fit_transform(events[:8])
    np.testing.assert_array_equal(X, ref)
    np.testing.assert_array_equal(y, labels[:8])
    ev, y = load_spike_hdf5(path, return_events=True, max_samples=3)
    assert len(ev) == 3 and len(y) == 3
    X, _ = load_spike_hdf5(path, n_steps=6, max_samples=1000)  # more than the file holds: all of it
    assert X.shape[0] == 23
    with pytest.raises(ValueError, match="max_samples must be a positive integer"):
        load_spike_hdf5(path, max_samples=0)


def test_out_path_is_a_read_only_memmap(shd_file, tmp_path):
    path, _, _ = shd_file
    X_mem, _ = load_spike_hdf5(path, n_steps=8)
    X_map, _ = load_spike_hdf5(path, n_steps=8, out=tmp_path / "binned.npy", chunk_size=5)
    assert isinstance(X_map, np.memmap) and not X_map.flags.writeable
    np.testing.assert_array_equal(X_map, X_mem)
    np.testing.assert_array_equal(np.load(tmp_path / "binned.npy"), X_mem)


def test_randman_events_through_a_file_train_a_classifier(tmp_path):
    """make_randman_events -> SHD-layout file -> load_spike_hdf5 == make_randman; it trains."""
    from sklearn_snn import SurrogateSNNClassifier
    from sklearn_snn.datasets import make_randman

    kw = dict(n_samples=120, n_classes=2, n_units=10, n_steps=20, random_state=0)
    events, y = make_randman_events(**kw)
    path = write_shd(tmp_path / "randman.h5", events, y)
    X, y2 = load_spike_hdf5(path, n_steps=20, duration=1.0, out=tmp_path / "X.npy")
    X_ref, _ = make_randman(**kw)
    np.testing.assert_array_equal(X, X_ref.astype(np.uint8))
    assert isinstance(X, np.memmap)

    def fit(X_train):
        return SurrogateSNNClassifier(hidden_layer_sizes=(32,), neuron="cuba", max_iter=60, learning_rate_init=0.01,
                                      random_state=0).fit(X_train, y2)

    clf = fit(X)  # the uint8 memmap, read batch by batch
    ref = fit(X_ref)  # the float32 array in memory: the same network
    np.testing.assert_allclose(clf.predict_proba(X), ref.predict_proba(X_ref), atol=1e-5)
    assert clf.score(X, y2) >= 0.9


def test_wrong_layout_says_what_was_expected_and_found(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("X", data=np.zeros((2, 3)))
        f.create_dataset("events/t", data=np.zeros(3))
    with pytest.raises(ValueError, match=r"lacks spikes/times, spikes/units, labels.*"
                                         r"Expected the datasets 'spikes/times'.*found 'X', 'events/t'"):
        load_spike_hdf5(path)


def test_mismatched_times_and_units(tmp_path):
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as f:
        t = f.create_dataset("spikes/times", (2,), dtype=h5py.vlen_dtype(np.float32))
        u = f.create_dataset("spikes/units", (2,), dtype=h5py.vlen_dtype(np.uint16))
        t[0], u[0] = np.array([0.1, 0.2], np.float32), np.array([1, 2], np.uint16)
        t[1], u[1] = np.array([0.1, 0.2], np.float32), np.array([1], np.uint16)
        f.create_dataset("labels", data=[0, 1])
    with pytest.raises(ValueError, match="sample 1 has 2 spike times but 1 units"):
        load_spike_hdf5(path)


def test_bad_arguments(shd_file):
    path, _, _ = shd_file
    with pytest.raises(ValueError, match="at most one of n_steps and bin_width"):
        load_spike_hdf5(path, n_steps=5, bin_width=0.1)
    with pytest.raises(ValueError, match="holds unit 10, out of range for n_units=4"):
        load_spike_hdf5(path, n_units=4)


def test_missing_h5py_is_named(monkeypatch, shd_file):
    import builtins

    real = builtins.__import__

    def no_h5py(name, *a, **k):
        if name == "h5py":
            raise ImportError("no h5py")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_h5py)
    with pytest.raises(ImportError, match="pip install h5py"):
        load_spike_hdf5(shd_file[0])


def test_shared_memmap_pickles_as_a_file_reference(tmp_path):
    import pickle

    from sklearn_snn.datasets import SharedMemmap, open_shared_memmap

    data = np.random.default_rng(0).random((300, 7, 5)) < 0.3
    np.save(tmp_path / "s.npy", data)
    X = open_shared_memmap(tmp_path / "s.npy")
    assert isinstance(X, SharedMemmap) and not X.flags.writeable
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(X[37:211])), data[37:211])
    for view in (X, X[37:211], X[5], X[100:101, 3:], X[:, 2]):
        blob = pickle.dumps(view, protocol=5)
        back = pickle.loads(blob)
        np.testing.assert_array_equal(back, np.asarray(view))
        if view.flags.c_contiguous:
            assert isinstance(back, SharedMemmap) and len(blob) < 400  # a reference, not the data
            assert not back.flags.writeable
        else:  # a strided view cannot be reopened from the file: it travels as data
            assert not isinstance(back, np.memmap)
    derived = X[[3, 1, 2]]  # fancy indexing copies into memory: an ordinary array's pickle
    assert np.array_equal(pickle.loads(pickle.dumps(derived)), data[[3, 1, 2]])


def test_open_shared_memmap_refuses_object_arrays(tmp_path):
    from sklearn_snn.datasets import open_shared_memmap

    np.save(tmp_path / "o.npy", np.array([np.zeros(2), np.zeros(3)], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="could not be memory-mapped"):
        open_shared_memmap(tmp_path / "o.npy")
