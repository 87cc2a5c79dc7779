"""Buffers between the audio source and the model.

- :class:`StrideBuffer` cuts audio arriving in chunks of any size into blocks of exactly one
  stride. Everything downstream sees the same blocks whatever the chunking was, which is
  what makes detections independent of how the input is chunked (bit for bit: the front
  end even computes on identical arrays).
- :class:`FrameRing` keeps the last ``capacity`` feature frames, the model's window, without
  moving them on every stride.
"""

from __future__ import annotations

import numpy as np


class StrideBuffer:
    """Regroups a stream of samples into blocks of ``stride`` samples.

    Parameters
    ----------
    stride:
        Block length in samples.
    """

    def __init__(self, stride: int):
        if stride <= 0:
            raise ValueError(f"stride must be a positive number of samples, got {stride}")
        self.stride = stride
        self._buf = np.zeros(stride, dtype=np.float64)
        self._fill = 0

    @property
    def pending(self) -> int:
        """Samples held back until the next block is complete."""
        return self._fill

    def reset(self) -> None:
        self._fill = 0

    def split(self, samples: np.ndarray) -> list[np.ndarray]:
        """Add ``samples`` (1-D float) and return the blocks they complete, oldest first.

        The returned blocks are new arrays or read-only views of ``samples``; the remainder
        (fewer than ``stride`` samples) is kept for the next call.
        """
        x = np.asarray(samples, dtype=np.float64)
        blocks, pos = [], 0
        if self._fill:
            pos = min(self.stride - self._fill, len(x))
            self._buf[self._fill:self._fill + pos] = x[:pos]
            self._fill += pos
            if self._fill < self.stride:
                return blocks
            blocks.append(self._buf.copy())
            self._fill = 0
        n_full = (len(x) - pos) // self.stride
        for i in range(n_full):
            block = x[pos + i * self.stride: pos + (i + 1) * self.stride]
            block.flags.writeable = False
            blocks.append(block)
        pos += n_full * self.stride
        rest = len(x) - pos
        self._buf[:rest] = x[pos:]
        self._fill = rest
        return blocks


class FrameRing:
    """The last ``capacity`` columns of a ``[rows, time]`` feature stream.

    Parameters
    ----------
    rows:
        Feature dimension (number of cepstra).
    capacity:
        Frames kept: the model window's width.
    """

    def __init__(self, rows: int, capacity: int):
        if rows <= 0 or capacity <= 0:
            raise ValueError(f"need rows > 0 and capacity > 0, got {rows} and {capacity}")
        self.rows, self.capacity = rows, capacity
        self._buf = np.zeros((rows, capacity), dtype=np.float32)
        self.reset()

    def reset(self) -> None:
        self._next = 0  # column the next frame goes to
        self.count = 0  # frames ever added

    @property
    def full(self) -> bool:
        return self.count >= self.capacity

    def extend(self, frames: np.ndarray) -> None:
        """Append ``frames`` of shape ``[rows, k]``, oldest first."""
        k = frames.shape[1]
        if frames.shape[0] != self.rows:
            raise ValueError(f"expected {self.rows} rows, got {frames.shape[0]}")
        if k >= self.capacity:
            self._buf[:] = frames[:, k - self.capacity:]
            self._next = 0
        else:
            first = min(k, self.capacity - self._next)
            self._buf[:, self._next:self._next + first] = frames[:, :first]
            self._buf[:, : k - first] = frames[:, first:]
            self._next = (self._next + k) % self.capacity
        self.count += k

    def window(self, out: np.ndarray | None = None) -> np.ndarray:
        """The stored frames in time order, shape ``[rows, capacity]`` (float32).

        Before the ring is full the oldest columns are zeros. ``out`` is filled and
        returned when given, which saves an allocation per stride.
        """
        if out is None:
            out = np.empty_like(self._buf)
        tail = self.capacity - self._next
        out[:, :tail] = self._buf[:, self._next:]
        out[:, tail:] = self._buf[:, : self._next]
        return out
