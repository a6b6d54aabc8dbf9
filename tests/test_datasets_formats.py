"""Published dataset formats read by tonic's own dataset classes, written here: nothing is downloaded.

N-MNIST (Orchard et al. 2015): one ``.bin`` file per sample under ``Train/<digit>/``, 40 bits
per event: byte 0 x, byte 1 y, byte 2 bit 7 polarity and bits 6-0 timestamp bits 22-16, bytes 3
and 4 timestamp bits 15-0 (us). SHD (Cramer et al. 2020, zenkelab.org data format): an HDF5
file with ``spikes/times`` (s) and ``spikes/units`` as variable-length arrays per sample,
``labels``, and ``extra/{speaker, keys, meta_info}``. tonic also checks that the downloaded
archive (``train.zip``, ``shd_train.h5.zip``) is present, so an archive is written beside.
"""

import zipfile

import h5py
import numpy as np
import pytest
import tonic

import ranvier as rv
from ranvier import datasets
from ranvier.units import ms, mV

#: tonic's NMNIST class checks for at least this many .bin files (the full set has 60000)
NMNIST_FILES = 10_000


def nmnist_bytes(x, y, t, p) -> bytes:
    t = np.asarray(t, dtype=np.int64)
    raw = np.zeros((len(t), 5), dtype=np.uint8)
    raw[:, 0], raw[:, 1] = x, y
    raw[:, 2] = (np.asarray(p) << 7) | ((t >> 16) & 0x7F)
    raw[:, 3], raw[:, 4] = (t >> 8) & 0xFF, t & 0xFF
    return raw.tobytes()


@pytest.fixture(scope="module")
def nmnist_root(tmp_path_factory):
    """An N-MNIST training folder: file k of digit d holds the latency-coded (k % 4)-th sklearn digit d."""
    root = tmp_path_factory.mktemp("data")
    location = root / "NMNIST"
    digits = datasets.digits_events(train=True, coding="latency")
    written = {}
    for digit in range(10):
        folder = location / "Train" / str(digit)
        folder.mkdir(parents=True)
        members = np.flatnonzero(digits.targets == digit)[:4]
        for k, member in enumerate(members):
            written[(digit, k)] = digits[int(member)][0]
        for k in range(NMNIST_FILES // 10):
            events = written[(digit, k % 4)]
            # the digit sits 13 px into the 34 px sensor, as N-MNIST's 28 px digits do with margins
            polarity = np.full(len(events), k % 2)
            data = nmnist_bytes(events["x"] + 13, events["y"] + 13, events["t"] + 17 * k, polarity)
            (folder / f"{k:05d}.bin").write_bytes(data)
    with zipfile.ZipFile(location / "train.zip", "w"):
        pass
    return root, written


@pytest.fixture(scope="module")
def shd_root(tmp_path_factory):
    """An SHD training file of 6 samples; sample 4 names unit 703 of the 700-channel cochlea."""
    root = tmp_path_factory.mktemp("data")
    location = root / "SHD"
    location.mkdir()
    rng = np.random.default_rng(5)
    times, units = [], []
    for index in range(6):
        count = 40 + 10 * index
        times.append(np.sort(rng.uniform(0, 0.2, count)).astype(np.float16))
        units.append(rng.integers(0, 700, count).astype(np.uint16))
    units[4][7] = 703
    with h5py.File(location / "shd_train.h5", "w") as file:
        spikes = file.create_group("spikes")
        spikes.create_dataset("times", data=np.array(times, dtype=object), dtype=h5py.vlen_dtype(np.float16))
        spikes.create_dataset("units", data=np.array(units, dtype=object), dtype=h5py.vlen_dtype(np.uint16))
        file.create_dataset("labels", data=np.array([0, 1, 12, 3, 4, 19], dtype=np.uint16))
        extra = file.create_group("extra")
        extra.create_dataset("speaker", data=np.array([0, 1, 2, 0, 1, 2], dtype=np.uint16))
        extra.create_dataset("keys", data=np.array([f"english-{k}".encode() for k in range(20)]))
        meta = extra.create_group("meta_info")
        meta.create_dataset("gender", data=np.array([b"female", b"male", b"female"]))
        meta.create_dataset("age", data=np.array([25, 31, 44], dtype=np.uint16))
        meta.create_dataset("body_height", data=np.array([1.6, 1.8, 1.7]))
    with zipfile.ZipFile(location / "shd_train.h5.zip", "w"):
        pass
    return root, times, units


def test_nmnist_files_read_through_tonic(nmnist_root):
    root, written = nmnist_root
    dataset = tonic.datasets.NMNIST(save_to=str(root), train=True)
    assert len(dataset) == NMNIST_FILES
    events, label = dataset[1000 + 1]  # digit 1, file 00001
    expected = written[(1, 1)]
    assert label == 1
    assert np.array_equal(events["x"], expected["x"] + 13) and np.array_equal(events["t"], expected["t"] + 17)
    source = datasets.from_tonic(dataset, index=1001)
    assert source.size == 34 * 34 * 2
    index = (1 * 34 + events["y"]) * 34 + events["x"]  # polarity 1
    assert np.array_equal(source.ids, index)
    assert np.allclose(source.times, 1e-3 + events["t"] * 1e-6)


def test_nmnist_with_tonic_transforms_through_a_network(nmnist_root):
    root, _ = nmnist_root
    transform = tonic.transforms.Compose([tonic.transforms.Downsample(spatial_factor=0.5),
                                          tonic.transforms.TimeJitter(std=100, sort_timestamps=True)])
    dataset = tonic.datasets.NMNIST(save_to=str(root), train=True, transform=transform)
    size = (17, 17, 2)
    net = rv.Network(dt=1 * ms, seed=2)
    inp = net.population(datasets.from_tonic(dataset, size, index=0), name="input")
    lif = rv.neurons.LIF(tau_m=10 * ms, v_rest=-65 * mV, v_th=-50 * mV, v_reset=-65 * mV, t_ref=2 * ms,
                         tau_syn={"exc": 5 * ms}, i_bias=0.0)
    out = net.population(lif, n=10, name="out")
    net.connect(inp, out, rv.connect.AllToAll(), weight=8 * mV)
    picks = [0, 1000, 5000, 9000]
    results = datasets.run_samples(net, dataset, 0.07, [out, inp], indices=picks, sensor_size=size, backend="numpy",
                                   progress=False)
    assert results.labels.tolist() == [0, 1, 5, 9] and not results.errors
    # the jitter drops the events it moves before t = 0, a different few at each read
    input_counts = results.features[:, 10:].sum(axis=1)
    assert np.all(input_counts <= [len(dataset.__class__(str(root))[i][0]) for i in picks])
    assert np.all(input_counts > 10)
    assert results.features[:, :10].sum() > 0


def test_shd_file_read_through_tonic(shd_root):
    root, times, units = shd_root
    dataset = tonic.datasets.SHD(save_to=str(root), train=True)
    assert len(dataset) == 6 and dataset.sensor_size == (700, 1, 1)
    events, label = dataset[2]
    assert label == 12
    source = datasets.from_tonic(dataset, index=2)
    assert source.size == 700
    assert np.array_equal(source.ids, units[2])
    # tonic keeps whole microseconds
    assert np.allclose(source.times, 1e-3 + times[2].astype(np.float64), atol=1e-6)


def test_a_bad_shd_sample_is_reported_and_the_rest_run(shd_root):
    root, _, units = shd_root
    dataset = tonic.datasets.SHD(save_to=str(root), train=True)
    net = rv.Network(dt=1 * ms)
    net.population(datasets.from_tonic(dataset, index=0), name="input")
    results = datasets.run_samples(net, dataset, 0.25, "input", batch=3, backend="numpy", progress=False)
    assert results.indices.tolist() == [0, 1, 2, 3, 5]
    assert list(results.errors) == [4] and "x = 703" in results.errors[4]
    for row, index in zip(results.features, results.indices, strict=True):
        assert np.array_equal(row, np.bincount(units[index], minlength=700))
