"""ranvier.datasets: tonic events as sources, the digits as events, many samples through one network."""

import numpy as np
import pytest
import tonic

import ranvier as rv
from ranvier import datasets
from ranvier.errors import DatasetError
from ranvier.units import ms, mV

DTYPE = np.dtype([("x", int), ("y", int), ("t", int), ("p", int)])
AUDIO = np.dtype([("t", int), ("x", int), ("p", int)])


def make_events(rows, dtype=DTYPE):
    return np.array([tuple(row) for row in rows], dtype=dtype)


def lif():
    return rv.neurons.LIF(tau_m=10 * ms, v_rest=-65 * mV, v_th=-50 * mV, v_reset=-65 * mV, t_ref=2 * ms,
                          tau_syn={"exc": 5 * ms}, i_bias=0.0)


def test_event_maps_to_the_flattened_tonic_frame_index():
    events = make_events([(1, 2, 0, 1), (3, 0, 5, 0), (0, 1, 9, 1)])
    times, ids = datasets.event_ids(events, (4, 3, 2))
    assert ids.tolist() == [(1 * 3 + 2) * 4 + 1, 3, (1 * 3 + 1) * 4 + 0]
    assert times.tolist() == [0, 5, 9]
    _, merged = datasets.event_ids(events, (4, 3, 2), polarity="merge")
    assert merged.tolist() == [2 * 4 + 1, 3, 1 * 4 + 0]


def test_neuron_counts_match_tonic_to_frame():
    rng = np.random.default_rng(0)
    size = (5, 4, 2)
    events = np.zeros(200, dtype=DTYPE)
    events["x"], events["y"], events["p"] = rng.integers(0, 5, 200), rng.integers(0, 4, 200), rng.integers(0, 2, 200)
    events["t"] = np.sort(rng.integers(0, 10_000, 200))
    # one window longer than the stream (n_time_bins=1 leaves out the last event)
    frame = tonic.transforms.ToFrame(sensor_size=size, time_window=20_000)(events)[0]
    source = datasets.from_tonic(events, size)
    assert source.size == 40
    assert np.array_equal(np.bincount(source.ids, minlength=40), frame.ravel())


def test_times_are_microseconds_after_start_and_the_source_knows_its_size():
    events = make_events([(0, 0, 0, 0), (2, 1, 2500, 1), (1, 1, 4000, 0)])
    source = datasets.from_tonic((events, 7), (3, 2, 2), start=2 * ms)
    assert np.allclose(source.times, [2e-3, 4.5e-3, 6e-3])
    net = rv.Network(dt=0.5 * ms)
    inp = net.population(source, name="input")
    assert inp.n == 12
    spikes = net.record(inp, "spikes")
    net.run(10 * ms, backend="numpy")
    assert np.allclose(spikes.times, [2e-3, 4.5e-3, 6e-3])
    assert spikes.ids.tolist() == [0, (1 * 2 + 1) * 3 + 2, 1 * 3 + 1]


def test_audio_events_without_y():
    events = make_events([(10, 699, 1), (20, 3, 1)], AUDIO)
    source = datasets.from_tonic(events, (700, 1, 1))
    assert source.size == 700
    assert source.ids.tolist() == [699, 3]


def test_a_tonic_dataset_gives_its_sensor_size_and_sample():
    train = datasets.digits_events(train=True, coding="latency")
    source = datasets.from_tonic(train, index=3)
    events, _ = train[3]
    assert source.size == 64
    assert len(source.times) == len(events)


@pytest.mark.parametrize("events, size, message", [
    (make_events([(0, 0, 5)], AUDIO)[["t", "p"]], (4, 1, 1), "lack field"),
    (make_events([(0, 0, 0, 0)])[["x", "t", "p"]], (2, 2, 1), r"\['y'\]"),
    (make_events([(0, 0, -3, 0)]), (2, 2, 1), "timestamps must be >= 0"),
    (make_events([(2, 0, 3, 0)]), (2, 2, 1), "x = 2 at event 0 is outside"),
    (make_events([(0, 0, 3, 2)]), (2, 2, 2), "p = 2"),
    (np.arange(3), (2, 2, 1), "structured event array"),
    (make_events([(0, 0, 3, 0)]), (2, 2), "sensor_size"),
])
def test_bad_events_raise_named_errors(events, size, message):
    with pytest.raises(DatasetError, match=message):
        datasets.from_tonic(events, size)


def test_unsorted_timestamps_are_sorted_with_a_warning_or_refused():
    events = make_events([(0, 0, 30, 0), (1, 0, 10, 0), (1, 1, 20, 1)])
    with pytest.warns(datasets.UnsortedEventsWarning):
        source = datasets.from_tonic(events, (2, 2, 2))
    assert np.all(np.diff(source.times) >= 0)
    assert source.ids.tolist() == [1, 7, 0]
    with pytest.raises(DatasetError, match="decrease at event 1"):
        datasets.from_tonic(events, (2, 2, 2), on_unsorted="error")


def test_an_empty_sample_is_a_silent_source_of_full_size():
    source = datasets.from_tonic(np.zeros(0, dtype=DTYPE), (3, 3, 2))
    net = rv.Network(dt=1 * ms)
    inp = net.population(source, name="input")
    spikes = net.record(inp, "spikes")
    net.run(5 * ms, backend="numpy")
    assert inp.n == 18 and spikes.num_spikes == 0


def test_other_arguments_are_checked():
    events = make_events([(0, 0, 3, 0)])
    with pytest.raises(DatasetError, match="polarity"):
        datasets.from_tonic(events, (2, 2, 1), polarity="on")
    with pytest.raises(DatasetError, match="sensor_size is required"):
        datasets.from_tonic(events)
    with pytest.raises(DatasetError, match="start"):
        datasets.from_tonic(events, (2, 2, 1), start=-1.0)


def test_tonic_transforms_apply_before_the_engine():
    events = make_events([(0, 0, 1000, 0), (3, 3, 1000, 1), (2, 2, 50_000, 1)])
    downsample = tonic.transforms.Downsample(spatial_factor=0.5)
    source = datasets.from_tonic(events, (2, 2, 2), transform=downsample)
    assert source.ids.tolist() == [0, 4 + 3, 4 + 3]
    denoise = tonic.transforms.Denoise(filter_time=10_000)
    assert len(datasets.from_tonic(events, (4, 4, 2), transform=denoise).times) < 3


def test_to_frame_gives_a_rate_input_at_the_frame_starts():
    events = make_events([(0, 0, 100, 0), (0, 0, 200, 0), (1, 0, 1500, 1)])
    to_frame = tonic.transforms.ToFrame(sensor_size=(2, 1, 2), time_window=1000, start_time=0, include_incomplete=True)
    source = datasets.from_tonic(events, (2, 1, 2), transform=to_frame, frame_time=1 * ms)
    assert source.ids.tolist() == [0, 0, 3]
    assert np.allclose(source.times, [1e-3, 1e-3, 2e-3])
    merged = datasets.from_tonic(events, (2, 1, 2), transform=to_frame, frame_time=1 * ms, polarity="merge")
    assert merged.size == 2 and merged.ids.tolist() == [0, 0, 1]
    with pytest.raises(DatasetError, match="frame_time"):
        datasets.from_tonic(events, (2, 1, 2), transform=to_frame)


def test_digits_train_and_test_split_the_real_digits():
    train = datasets.digits_events(train=True)
    test = datasets.digits_events(train=False)
    assert len(train) + len(test) == 1797
    assert len(test) == pytest.approx(0.25 * 1797, abs=10)
    assert set(np.unique(test.targets)) == set(range(10))
    flat = {image.tobytes() for image in train.images}
    assert not any(image.tobytes() in flat for image in test.images[:50])
    assert np.array_equal(datasets.digits_events(train=False).targets, test.targets)


def test_saccade_events_lie_on_the_sensor_and_follow_the_three_saccades():
    train = datasets.digits_events(train=True, coding="saccade")
    events, label = train[0]
    assert label == train.targets[0]
    assert train.sensor_size == (12, 12, 2)
    assert events["x"].min() >= 0 and events["x"].max() < 12 and events["y"].max() < 12
    assert np.all(np.diff(events["t"]) >= 0) and events["t"].max() <= 300_000
    on, off = np.count_nonzero(events["p"] == 1), np.count_nonzero(events["p"] == 0)
    assert on > 100 and off > 100
    # each saccade moves the digit, so each 100 ms third holds events
    thirds = np.bincount(np.minimum(events["t"] // 100_000, 2), minlength=3)
    assert np.all(thirds > 0.15 * len(events))
    assert np.array_equal(train[0][0], events)


def test_latency_code_sends_brighter_pixels_earlier():
    image = np.zeros((8, 8))
    image[1, 2], image[5, 6] = 16, 4
    events = datasets.latency_events(image, window=0.05)
    assert events["x"].tolist() == [2, 6] and events["y"].tolist() == [1, 5]
    assert events["t"].tolist() == [0, 37_500]


def test_bad_digits_arguments():
    with pytest.raises(DatasetError, match="coding"):
        datasets.digits_events(coding="rate")
    with pytest.raises(DatasetError, match="test_fraction"):
        datasets.digits_events(test_fraction=1.5)


def small_network(dataset, seed=3):
    net = rv.Network(dt=1 * ms, seed=seed)
    inp = net.population(datasets.from_tonic(dataset[0], dataset.sensor_size), name="input")
    hidden = net.population(lif(), n=40, name="hidden", init={"v": rv.init.Uniform(-65 * mV, -55 * mV)})
    net.connect(inp, hidden, rv.connect.Bernoulli(p=0.3), weight=rv.init.Uniform(0, 12 * mV), delay=1 * ms)
    return net


def test_run_samples_batches_give_the_features_of_single_runs():
    test = datasets.digits_events(train=False, coding="latency")
    net = small_network(test)
    batched = datasets.run_samples(net, test, 0.06, "hidden", indices=range(6), batch=4, backend="numpy",
                                   progress=False)
    single = datasets.run_samples(net, test, 0.06, "hidden", indices=range(6), batch=1, backend="numpy",
                                  progress=False)
    assert batched.features.shape == (6, 40)
    assert batched.features.sum() > 0
    assert np.array_equal(batched.features, single.features)
    assert batched.labels.tolist() == test.targets[:6].tolist()
    again = datasets.run_samples(net, test, 0.06, ["hidden", "input"], indices=[2, 2], batch=2, backend="numpy",
                                 progress=False)
    assert np.array_equal(again.features[0, :40], batched.features[2])
    assert np.array_equal(again.features[0], again.features[1])
    assert again.features[0, 40:].sum() == len(test[2][0])


def test_run_samples_restores_the_network():
    test = datasets.digits_events(train=False, coding="latency")
    net = small_network(test)
    before = net["hidden"].get("v")
    source = net["input"].model
    datasets.run_samples(net, test, 0.06, "hidden", indices=range(3), backend="numpy", progress=False)
    assert net["input"].model is source
    assert np.array_equal(net["hidden"].get("v"), before)
    assert not net.spike_monitors


class Damaged:
    """A dataset whose sample 1 has a coordinate outside the sensor and sample 3 fails to load."""

    sensor_size = (8, 8, 1)

    def __init__(self):
        self.digits = datasets.digits_events(train=False, coding="latency")

    def __len__(self):
        return 5

    def __getitem__(self, index):
        if index == 3:
            raise OSError("truncated file sample_3.bin")
        events, label = self.digits[index]
        if index == 1:
            events = events.copy()
            events["x"][0] = 9
        return events, label


def test_a_bad_sample_is_reported_by_index_and_the_others_kept():
    dataset = Damaged()
    net = small_network(dataset.digits)
    results = datasets.run_samples(net, dataset, 0.06, "hidden", batch=5, backend="numpy", progress=False)
    assert results.indices.tolist() == [0, 2, 4]
    assert set(results.errors) == {1, 3}
    assert "sample 1: x = 9" in results.errors[1]
    assert "sample_3.bin" in results.errors[3]
    reference = datasets.run_samples(net, dataset.digits, 0.06, "hidden", indices=[0, 2, 4], backend="numpy",
                                     progress=False)
    assert np.array_equal(results.features, reference.features)


def test_events_after_the_duration_are_dropped_with_a_warning():
    events = make_events([(0, 0, 1000, 0), (1, 0, 30_000, 0)])
    net = rv.Network(dt=1 * ms)
    net.population(datasets.from_tonic(events, (2, 1, 1)), name="input")
    with pytest.warns(UserWarning, match="1 events after duration"):
        results = datasets.run_samples(net, [(events, 0)], 0.01, "input", sensor_size=(2, 1, 1), backend="numpy",
                                       progress=False)
    assert results.features.tolist() == [[1, 0]]


def test_run_samples_checks_its_arguments():
    test = datasets.digits_events(train=False, coding="latency")
    net = small_network(test)
    with pytest.raises(DatasetError, match="gives 128 neurons"):
        datasets.run_samples(net, test, 0.05, "hidden", sensor_size=(8, 8, 2), progress=False)
    with pytest.raises(DatasetError, match="duration"):
        datasets.run_samples(net, test, 0.0, "hidden", progress=False)
    with pytest.raises(DatasetError, match="batch"):
        datasets.run_samples(net, test, 0.05, "hidden", batch=0, progress=False)
    with pytest.raises(DatasetError, match="only a SpikeSource"):
        datasets.run_samples(net, test, 0.05, "hidden", input="hidden", sensor_size=(40, 1, 1), progress=False)


def test_an_event_half_a_step_from_a_grid_time_goes_the_same_way_in_every_sample():
    events = make_events([(0, 0, 10_500, 0)])  # 10.5 ms at dt = 1 ms: a tie, rounded to even (10)
    fresh = rv.Network(dt=1 * ms)
    monitor = fresh.record(fresh.population(datasets.from_tonic(events, (1, 1, 1)), name="input"), "spikes")
    fresh.run(0.011, backend="numpy")
    net = rv.Network(dt=1 * ms)
    net.population(datasets.from_tonic(events, (1, 1, 1)), name="input")
    results = datasets.run_samples(net, [(events, 0)] * 4, 0.011, "input", sensor_size=(1, 1, 1), backend="numpy",
                                   progress=False)
    assert results.features[:, 0].tolist() == [monitor.num_spikes] * 4


def _pulsing_network(events) -> rv.Network:
    net = rv.Network(dt=1 * ms, seed=3)
    net.population(datasets.from_tonic(events, (1, 1, 1)), name="input")
    net.population(rv.neurons.Kuramoto(omega=2 * np.pi * 105, pulses=True), n=1, name="osc", init={"theta": 0.0})
    return net


@pytest.mark.parametrize("batch", [1, 2])
def test_samples_with_a_value_population_equal_fresh_runs_in_any_batch(batch):
    events = make_events([])
    fresh = _pulsing_network(events)
    pulses = fresh.record(fresh["osc"], "spikes")
    fresh.run(0.01, backend="numpy")
    results = datasets.run_samples(_pulsing_network(events), [(events, 0)] * 3, 0.01, "osc", batch=batch,
                                   sensor_size=(1, 1, 1), backend="numpy", progress=False)
    assert results.features[:, 0].tolist() == [pulses.num_spikes] * 3


def test_samples_that_do_not_start_a_window_of_a_population_with_its_own_dt_are_refused():
    events = make_events([])
    net = rv.Network(dt=1 * ms)
    net.population(datasets.from_tonic(events, (1, 1, 1)), name="input")
    net.population(rv.neurons.Kuramoto(omega=10.0, pulses=True), n=2, name="osc", dt=3 * ms)
    with pytest.raises(DatasetError, match="'osc' updates every 3 steps .* samples start every 11 steps from step 0"):
        datasets.run_samples(net, [(events, 0)] * 2, 0.011, "osc", sensor_size=(1, 1, 1), progress=False)
    net.run(1 * ms, backend="numpy")
    with pytest.raises(DatasetError, match="start every 12 steps from step 1"):
        datasets.run_samples(net, [(events, 0)] * 2, 0.012, "osc", sensor_size=(1, 1, 1), progress=False)


def test_a_readout_that_does_not_spike_is_refused_before_any_sample_runs():
    events = make_events([])
    net = rv.Network(dt=1 * ms)
    net.population(datasets.from_tonic(events, (1, 1, 1)), name="input")
    net.population(rv.neurons.Kuramoto(omega=10.0), n=2, name="osc")
    with pytest.raises(DatasetError, match="readout 'osc' does not spike"):
        datasets.run_samples(net, [(events, 0)], 0.01, "osc", sensor_size=(1, 1, 1), progress=False)
