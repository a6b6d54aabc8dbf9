"""Event datasets: tonic event streams as spike sources, real digits as events, many samples, streaming.

``from_tonic`` turns a tonic event array, sample or dataset into a
:class:`~ranvier.neurons.SpikeSource` (see :mod:`ranvier.datasets.events` for the mapping of
``(x, y, p)`` to neurons and of microseconds to seconds); ``digits_events`` gives the
scikit-learn digits as N-MNIST-like or latency-coded event streams with a train/test split;
``run_samples`` runs a dataset through one network collecting readout spike counts;
``stream`` feeds a long recording in chunks. tonic, scikit-learn and h5py are imported only
when used.
"""

from .digits import EventDataset, digits_events, latency_events, saccade_events
from .events import UnsortedEventsWarning, event_ids, from_tonic, source_size
from .runner import SampleResults, replace_source, run_samples
from .streaming import chunked, stream

__all__ = [
    "EventDataset", "SampleResults", "UnsortedEventsWarning", "chunked", "digits_events", "event_ids", "from_tonic",
    "latency_events", "replace_source", "run_samples", "saccade_events", "source_size", "stream",
]
