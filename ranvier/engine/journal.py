"""HDF5 files changed in place with a journal, so that a process killed at any moment leaves the last
committed version (the append-only checkpoints of :mod:`ranvier.engine.storage`).

A checkpoint after the first changes the file in place (docs/storage.md, "Checkpoints"). The
committed file is an HDF5 image whose superblock names its end (EOA) and nothing after it. While a
checkpoint is written, HDF5 puts its new chunks and metadata after that end, straight into the
file, and the pages it changes inside the image (metadata, state, the last chunk of a growing
dataset) are held in memory (JournaledFile). Committing appends those pages as a journal record
and a trailer (the commit marker), then copies them into place and cuts the file at its new end.
A process killed before the trailer is complete leaves the previous image intact and a tail past
its end, which recover cuts off; one killed after it leaves a journal that recover copies into
place again.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import struct
from collections.abc import Callable
from pathlib import Path

from ..errors import StorageError

#: the last bytes of a file whose checkpoint is committed but not yet in place: the journal record's
#: offset and length, the SHA-256 of the record and of those two numbers, and _COMMIT
_TRAILER = struct.Struct("<QQ32s8s")
_COMMIT = b"RVCOMMIT"
#: a journal record starts with _JOURNAL, the image's length before and after the checkpoint, and
#: the number of patches; each patch is its offset and length, then its bytes
_RECORD = struct.Struct("<8sQQQ")
_JOURNAL = b"RVJOURNL"
_PATCH = struct.Struct("<QQ")
#: bytes of a page of the committed image held in memory while a checkpoint changes it
_PAGE = 4096
#: an HDF5 superblock of version 2 or 3 (the 1.10 format) with 8-byte addresses: signature, version,
#: sizes of offsets and lengths, flags, base address, extension address, end of file, root group, checksum
_SUPERBLOCK = struct.Struct("<8sBBBBQQQQI")
_SIGNATURE = b"\x89HDF\r\n\x1a\n"


#: lookup3's mix and final rounds: (p, q, r, k) is ``v[p] = (v[p] - v[q]) ^ rot(v[q], k); v[q] += v[r]``,
#: (p, q, k) is ``v[p] = (v[p] ^ v[q]) - rot(v[q], k)``, over v = [a, b, c], 32-bit
_LOOKUP3_MIX = ((0, 2, 1, 4), (1, 0, 2, 6), (2, 1, 0, 8), (0, 2, 1, 16), (1, 0, 2, 19), (2, 1, 0, 4))
_LOOKUP3_FINAL = ((2, 1, 14), (0, 2, 11), (1, 0, 25), (2, 1, 16), (0, 2, 4), (1, 0, 14), (2, 1, 24))


def _lookup3(data: bytes) -> int:
    """HDF5's metadata checksum: Bob Jenkins' lookup3 ``hashlittle`` of ``data`` with initial value 0."""
    mask = 0xFFFFFFFF

    def rotate(x: int, k: int) -> int:
        return ((x << k) | (x >> (32 - k))) & mask

    v = [(0xDEADBEEF + len(data)) & mask] * 3
    if not data:
        return v[2]
    padded = data + bytes(-len(data) % 12)  # the last block's missing bytes count as 0
    blocks = len(padded) // 12
    for block in range(blocks):
        v = [(value + word) & mask for value, word in zip(v, struct.unpack_from("<III", padded, 12 * block),
                                                          strict=True)]
        if block < blocks - 1:  # the last block goes to the final rounds unmixed
            for p, q, r, k in _LOOKUP3_MIX:
                v[p] = ((v[p] - v[q]) & mask) ^ rotate(v[q], k)
                v[q] = (v[q] + v[r]) & mask
    for p, q, k in _LOOKUP3_FINAL:
        v[p] = ((v[p] ^ v[q]) - rotate(v[q], k)) & mask
    return v[2]


def _pread(fd: int, size: int, offset: int) -> bytes:
    """``size`` bytes at ``offset`` of ``fd``, fewer only at the end of the file."""
    parts = []
    while size > 0:
        part = os.pread(fd, size, offset)
        if not part:
            break
        parts.append(part)
        size, offset = size - len(part), offset + len(part)
    return b"".join(parts)


def _pwrite(fd: int, data, offset: int) -> None:
    view = memoryview(data).cast("B")
    while len(view):
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def _image_end(fd: int) -> int | None:
    """The end of the HDF5 image in ``fd`` as its superblock names it (a superblock of version 2 or
    3 at offset 0, its checksum right); None for any other file."""
    head = _pread(fd, _SUPERBLOCK.size, 0)
    if len(head) != _SUPERBLOCK.size:
        return None
    signature, version, offsets, lengths, _, base, _, end, _, checksum = _SUPERBLOCK.unpack(head)
    if (signature != _SIGNATURE or version not in (2, 3) or (offsets, lengths, base) != (8, 8, 0)
            or _lookup3(head[:-4]) != checksum):
        return None
    return end


def _journal(fd: int) -> tuple[int, list[tuple[int, bytes]]] | None:
    """The committed journal at the end of ``fd``: the image's new length and the patches to copy
    into it; None unless the file ends in a whole record and trailer that match their digest, with
    every patch inside the image and the image ending at or before the record."""
    size = os.fstat(fd).st_size
    if size < _TRAILER.size:
        return None
    offset, length, digest, marker = _TRAILER.unpack(_pread(fd, _TRAILER.size, size - _TRAILER.size))
    if marker != _COMMIT or length < _RECORD.size or offset + length + _TRAILER.size != size:
        return None
    record = _pread(fd, length, offset)
    if hashlib.sha256(record + _PATCH.pack(offset, length)).digest() != digest:
        return None
    magic, _, end, count = _RECORD.unpack_from(record)
    patches, at = [], _RECORD.size
    for _ in range(count):
        if at + _PATCH.size > length:
            return None
        start, patch_length = _PATCH.unpack_from(record, at)
        at += _PATCH.size
        patches.append((start, record[at:at + patch_length]))
        at += patch_length
    if magic != _JOURNAL or at != length or end > offset or any(start + len(data) > end for start, data in patches):
        return None
    return end, patches


def _complete(fd: int, end: int, patches: list[tuple[int, bytes]]) -> None:
    """Copy a committed checkpoint's patches into the image and cut the file at its end (again, if
    a killed process did part of it: the same bytes go to the same places). The cut needs no
    flush: a cut lost with the machine's power leaves the journal, to be completed again."""
    for offset, data in patches:
        _pwrite(fd, data, offset)
    os.fsync(fd)
    os.ftruncate(fd, end)


def _tail(fd: int) -> str | None:
    """What a killed checkpoint left at the end of ``fd``: ``"committed"`` (a journal to put in place),
    ``"uncommitted"`` (bytes past the image's end), or None (nothing)."""
    end = _image_end(fd)
    size = os.fstat(fd).st_size
    if end == size:
        return None
    if _journal(fd) is not None:
        return "committed"
    return "uncommitted" if end is not None and size > end else None


def recover(fd: int) -> None:
    """Make ``fd`` exactly its last committed checkpoint: complete a committed journal, or cut off
    an uncommitted tail. Only for a file no other process is writing (see :func:`lock`)."""
    journal = _journal(fd)
    if journal is not None:
        _complete(fd, *journal)
        return
    end = _image_end(fd)
    if end is not None and os.fstat(fd).st_size > end:
        os.ftruncate(fd, end)


def lock(fd: int) -> bool:
    """Take the file's exclusive lock, without waiting: False when another open file holds a lock
    on it (HDF5 keeps a shared one while a file is open for reading, and a checkpoint being written
    holds the exclusive one). A file system without locks (``flock`` fails otherwise) excludes
    nothing: True."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return True
    return True


def settle(path: Path, ours: Callable[[Path], bool]) -> None:
    """Before reading ``path``: if a killed checkpoint left something at its end and nobody else has
    the file open, recover it (:func:`recover`). Otherwise an uncommitted tail is left for the next
    checkpoint to cut (HDF5 reads nothing past the end its superblock names), and a committed one,
    which must be in place to be read, is a :class:`StorageError`.

    Bytes past the image's end are cut only from a file that ``ours(path)`` says a checkpoint
    wrote: another program's HDF5 file may keep data there, and reading must not change it. A
    committed journal names itself (its trailer's marker and digest)."""
    try:
        with open(path, "rb") as handle:
            tail = _tail(handle.fileno())
    except OSError:
        return  # opening it for HDF5 names the problem
    if tail is None or (tail == "uncommitted" and not ours(path)):
        return
    refused = StorageError(f"{path}: its last checkpoint is committed but not yet in place, and this process "
                           "cannot complete it (the file is open elsewhere, or read-only); "
                           "close the file elsewhere and read it again")
    try:
        handle = open(path, "rb+")
    except OSError:
        if tail == "committed":
            raise refused from None
        return
    with handle:
        if lock(handle.fileno()):
            recover(handle.fileno())
        elif tail == "committed":
            raise refused


class JournaledFile(io.RawIOBase):
    """The checkpoint file as HDF5 sees it (h5py's ``fileobj`` driver) while a checkpoint is written.

    The committed image, bytes below ``base``, is never written: a write there changes a copy of
    its page (:data:`_PAGE` bytes) held in memory, and reads see the copies. Bytes from ``base`` on,
    where HDF5 allocates new chunks and metadata, go straight to the file. :meth:`commit` then
    makes the checkpoint durable in the order that a killed process can be recovered from."""

    def __init__(self, fd: int):
        super().__init__()
        self._fd = fd
        self._base = self._length = os.fstat(fd).st_size
        self._position = 0
        self._pages: dict[int, bytearray] = {}
        self._committed = False

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        origin = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: self._length}[whence]
        self._position = origin + offset
        return self._position

    def tell(self) -> int:
        return self._position

    def _held_until(self, position: int, end: int) -> tuple[bytearray | None, int]:
        """The page copy that holds ``position`` (below ``base``) or None, and where that stretch ends:
        the page's end, or the next held page's start (at most ``end`` and ``base``)."""
        page = position // _PAGE
        stop = min(end, self._base)
        if page in self._pages:
            return self._pages[page], min(stop, (page + 1) * _PAGE)
        page += 1
        while page * _PAGE < stop and page not in self._pages:
            page += 1
        return None, min(stop, page * _PAGE)

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        start = position = self._position
        end = start + len(view)
        while position < end:
            held, stop = self._held_until(position, end) if position < self._base else (None, end)
            target = view[position - start:stop - start]
            if held is not None:
                offset = position % _PAGE
                target[:] = held[offset:offset + len(target)]
            else:
                data = _pread(self._fd, len(target), position)
                target[:len(data)] = data
                target[len(data):] = bytes(len(target) - len(data))  # past the end of the file
            position = stop
        self._position = end
        return len(view)

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        start = position = self._position
        end = start + len(view)
        while position < min(end, self._base):
            page = position // _PAGE
            if page not in self._pages:
                self._pages[page] = bytearray(_pread(self._fd, min(_PAGE, self._base - page * _PAGE), page * _PAGE))
            held = self._pages[page]
            offset = position % _PAGE
            stop = min(end, page * _PAGE + len(held))
            held[offset:offset + stop - position] = view[position - start:stop - start]
            position = stop
        if position < end:
            _pwrite(self._fd, view[position - start:], position)
        self._position = end
        self._length = max(self._length, end)
        return len(view)

    def truncate(self, size: int | None = None) -> int:
        size = self._position if size is None else size
        os.ftruncate(self._fd, max(size, self._base))  # the image is cut, if at all, once committed
        self._length = size
        return size

    def _patches(self) -> list[tuple[int, bytes]]:
        """The changed pages inside the new image's length, runs of adjacent pages joined."""
        runs: list[tuple[int, bytearray]] = []
        for page in sorted(self._pages):
            start = page * _PAGE
            if start >= self._length:
                break
            data = self._pages[page][:self._length - start]
            if runs and runs[-1][0] + len(runs[-1][1]) == start:
                runs[-1][1].extend(data)
            else:
                runs.append((start, bytearray(data)))
        return [(start, bytes(data)) for start, data in runs]

    def commit(self) -> None:
        """Make the checkpoint durable: flush the new bytes; append the journal record (the changed
        pages) and its trailer, and flush (from here the checkpoint is committed); copy the pages
        into place and cut the file at the image's new end (:func:`_complete`)."""
        fd, patches = self._fd, self._patches()
        os.fsync(fd)
        offset = max(os.fstat(fd).st_size, self._length)
        record = b"".join([_RECORD.pack(_JOURNAL, self._base, self._length, len(patches)),
                           *(_PATCH.pack(start, len(data)) + data for start, data in patches)])
        digest = hashlib.sha256(record + _PATCH.pack(offset, len(record))).digest()
        _pwrite(fd, record + _TRAILER.pack(offset, len(record), digest, _COMMIT), offset)
        os.fsync(fd)
        self._committed = True
        _complete(fd, self._length, patches)

    def abandon(self) -> None:
        """After a failure: cut off what this checkpoint appended, or, once committed, complete it."""
        if self._committed:
            recover(self._fd)
        else:
            os.ftruncate(self._fd, self._base)


