"""Tiny SHD files in the released layout (Cramer et al. 2020), for tonic's own ``tonic.datasets.SHD`` reader.

The released ``shd_train.h5`` / ``shd_test.h5`` hold, per sample ``n``, variable-length
``spikes/times[n]`` (seconds, float16) and ``spikes/units[n]`` (cochlea channel 0..699,
uint16), ``labels[n]`` (0..19), ``extra/speaker[n]``, the class names ``extra/keys`` (20 byte
strings) and per speaker ``extra/meta_info/{gender, age, body_height}``. tonic (1.x) opens
``<save_to>/SHD/shd_{train,test}.h5`` and only downloads when the archive
``shd_{train,test}.h5.zip`` beside it is missing (its md5 is not checked), so an empty archive
is written too.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

#: SHD's class names: English then German digits
SHD_KEYS = [f"english-{k}" for k in range(10)] + [f"german-{k}" for k in range(10)]


def write_shd(save_to: str | Path, times: Sequence[np.ndarray], units: Sequence[np.ndarray],
              labels: Sequence[int], *, train: bool = True, speakers: Sequence[int] | None = None) -> Path:
    """Write an SHD file of ``len(labels)`` samples under ``save_to/SHD``; return the ``.h5`` path.

    ``tonic.datasets.SHD(save_to=str(save_to), train=train)`` then reads it without a download.
    Times are stored as float16 seconds, as in the released files (so pass float16-exact times
    when comparing exactly).
    """
    location = Path(save_to) / "SHD"
    location.mkdir(parents=True, exist_ok=True)
    name = "shd_train.h5" if train else "shd_test.h5"
    speakers = np.zeros(len(labels), dtype=np.uint16) if speakers is None else np.asarray(speakers, dtype=np.uint16)
    n_speakers = int(speakers.max()) + 1 if speakers.size else 1
    path = location / name
    with h5py.File(path, "w") as file:
        spikes = file.create_group("spikes")
        spikes.create_dataset("times", data=np.array([np.asarray(t, dtype=np.float16) for t in times] + [None],
                                                     dtype=object)[:-1], dtype=h5py.vlen_dtype(np.float16))
        spikes.create_dataset("units", data=np.array([np.asarray(u, dtype=np.uint16) for u in units] + [None],
                                                     dtype=object)[:-1], dtype=h5py.vlen_dtype(np.uint16))
        file.create_dataset("labels", data=np.asarray(labels, dtype=np.uint16))
        extra = file.create_group("extra")
        extra.create_dataset("speaker", data=speakers)
        extra.create_dataset("keys", data=np.array([key.encode() for key in SHD_KEYS]))
        meta = extra.create_group("meta_info")
        meta.create_dataset("gender", data=np.array([b"female", b"male"] * n_speakers)[:n_speakers])
        meta.create_dataset("age", data=np.full(n_speakers, 30, dtype=np.uint16))
        meta.create_dataset("body_height", data=np.full(n_speakers, 1.7))
    with zipfile.ZipFile(location / f"{name}.zip", "w"):
        pass
    return path
