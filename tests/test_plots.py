"""Plots: raster, population rates, state traces and the Kuramoto order parameter, saved as PNG."""

import numpy as np
import pytest

import ranvier as rv
from ranvier import plots
from ranvier.errors import RecordingError
from ranvier.units import ms


@pytest.fixture(scope="module")
def cuba():
    net = rv.networks.cuba(n=400, seed=2)
    spikes = [net.record(net[name], "spikes") for name in ("exc", "inh")]
    v = net.record(net["exc"], "v", ids=[0, 1, 2], every=0.5 * ms)
    net.run(0.05, backend="numpy")
    return spikes, v


def _drawn_points(figure) -> int:
    total = 0
    for ax in figure.axes:
        total += sum(len(line.get_xdata()) for line in ax.get_lines())
        total += sum(len(collection.get_offsets()) for collection in ax.collections)
    return total


def test_raster_draws_every_spike_and_saves_a_png(cuba, tmp_path):
    spikes, _ = cuba
    figure = plots.raster(spikes, tmp_path / "raster.png", title="CUBA")
    assert _drawn_points(figure) == sum(monitor.num_spikes for monitor in spikes) > 50
    assert (tmp_path / "raster.png").stat().st_size > 5_000


def test_population_rates_match_the_spike_counts(cuba, tmp_path):
    spikes, _ = cuba
    figure = plots.population_rates(spikes, 0.05, tmp_path / "rates.png", bin_width=5 * ms)
    lines = figure.axes[0].get_lines()
    assert len(lines) == 2
    for line, monitor in zip(lines, spikes, strict=True):
        # rate * n * bin width sums back to the number of spikes
        assert np.sum(line.get_ydata()) * monitor.population.n * 5e-3 == pytest.approx(monitor.num_spikes)
    assert (tmp_path / "rates.png").stat().st_size > 5_000


def test_the_rate_of_a_monitor_of_some_neurons_is_per_recorded_neuron():
    net = rv.Network(dt=0.1 * ms, seed=3)
    source = net.population(rv.neurons.PoissonSource(rate=100.0), n=100, name="src")
    every = net.record(source, "spikes")
    some = net.record(source, "spikes", ids=range(10))
    net.run(0.5, backend="numpy")
    _, rate_of_some = plots.population_rate(some, 0.5, 0.05)
    assert np.sum(rate_of_some) * 10 * 0.05 == pytest.approx(some.num_spikes)
    assert np.mean(rate_of_some) == pytest.approx(np.mean(plots.population_rate(every, 0.5, 0.05)[1]), rel=0.2)
    assert len(plots.raster_and_rate(some, 0.5).axes) == 2  # one monitor, as raster takes it


def test_state_traces_show_each_recorded_neuron_in_display_units(cuba, tmp_path):
    _, v = cuba
    figure = plots.state_traces(v, tmp_path / "v.png", scale=1e3, unit="mV")
    lines = figure.axes[0].get_lines()
    assert len(lines) == 3
    np.testing.assert_allclose(lines[1].get_ydata(), v.values[:, 1] * 1e3)
    assert figure.axes[0].get_ylabel() == "v (mV)"
    assert (tmp_path / "v.png").stat().st_size > 5_000


def test_order_parameter_plots_the_recorded_order(tmp_path):
    net = rv.networks.kuramoto(n=100, coupling=4.0, spread=0.5, seed=1)
    order = net.record(net["osc"], "order", every=10 * ms)
    net.run(2.0, backend="numpy")
    figure = plots.order_parameter(order, tmp_path / "order.png", title="Kuramoto")
    drawn = figure.axes[0].get_lines()[0].get_ydata()
    np.testing.assert_allclose(drawn, order.values[:, 0])
    assert drawn[-1] > 0.5  # K = 4 > K_c = 1 synchronises
    assert (tmp_path / "order.png").stat().st_size > 5_000


def test_order_parameter_refuses_another_variable(cuba):
    _, v = cuba
    with pytest.raises(RecordingError, match="'v'"):
        plots.order_parameter(v)


def test_plots_share_a_figure_through_ax(cuba):
    spikes, v = cuba
    figure, (top, bottom) = plots._pyplot().subplots(2, 1)
    assert plots.raster(spikes, ax=top) is figure
    assert plots.state_traces(v, ax=bottom) is figure
    assert _drawn_points(figure) == sum(m.num_spikes for m in spikes) + 3 * len(v.t)


def test_state_traces_show_a_voltage_in_millivolts_by_default(cuba):
    _, v = cuba
    figure = plots.state_traces(v)
    ax = figure.axes[-1]
    assert ax.get_ylabel() == "v (mV)"
    assert -70 < np.min(ax.get_lines()[0].get_ydata()) and np.max(ax.get_lines()[0].get_ydata()) < -40
    assert plots.state_traces(v, scale=1.0, unit="V").axes[-1].get_ylabel() == "v (V)"


def test_a_raster_that_leaves_neurons_out_says_how_many_it_shows(cuba):
    spikes, _ = cuba
    figure = plots.raster_and_rate(spikes, 0.05, title="CUBA, 400 neurons", max_neurons=100)
    title = figure.axes[0].get_title()
    assert "CUBA, 400 neurons" in title and "180 of 400 neurons shown" in title  # 100 of 320 exc, all 80 inh
    labels = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert labels == ["exc (first 100 of 320)", "inh"]
    assert "shown" not in plots.raster(spikes, title="all").axes[0].get_title()


def test_energy_of_several_targets_is_on_a_log_axis_with_shares_apart(cuba):
    spikes, _ = cuba
    net = spikes[0].population.network
    reports = rv.hardware.compare(net, ["loihi2", "loihi", "cpu"])
    figure = rv.hardware.plot(reports)
    totals, shares = figure.axes[:2]
    assert totals.get_yscale() == "log" and "over the run" in totals.get_ylabel()
    heights = [bar.get_height() for bar in totals.patches]
    assert heights == pytest.approx([r.energy for r in reports])  # one bar per target, not stacked
    assert shares.get_yscale() == "linear"
    stacked = np.zeros(len(reports))
    for index, bar in enumerate(shares.patches):
        stacked[index % len(reports)] += bar.get_height()
    assert stacked == pytest.approx(100.0)
