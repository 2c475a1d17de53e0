"""TensorBoard event files written directly: TFRecord framing around ``Event`` protocol buffers.

jaxreg writes three kinds of event: scalars, histograms and the session start
that tells TensorBoard to drop what an interrupted run wrote after a step.
They are encoded here in a few lines rather than with tensorboardX, whose
writer imports PyTorch whenever it is installed (1.3 s of every run's start-up
on the project's machine). The format is TensorFlow's: each record is
``len (uint64) | masked crc32c(len) | data | masked crc32c(data)``, little
endian, and ``data`` an ``Event`` (``tensorboard/compat/proto/event.proto``).
``tests/test_tensorboard.py`` reads the files back with TensorBoard's own reader.
"""

import os
import socket
import struct
import time

import numpy as np


def _crc32c_table() -> list[int]:
  table = []
  for byte in range(256):
    crc = byte
    for _ in range(8):
      crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)  # the Castagnoli polynomial, reflected
    table.append(crc)
  return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
  """CRC-32C (Castagnoli) of ``data``, as TFRecord files use.

  Examples:
    >>> hex(crc32c(b'123456789'))  # the standard check value
    '0xe3069283'
  """
  crc = 0xFFFFFFFF
  for byte in data:
    crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
  return crc ^ 0xFFFFFFFF


def _masked(crc: int) -> int:
  return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(value: int) -> bytes:
  out = bytearray()
  while True:
    byte, value = value & 0x7F, value >> 7
    out.append(byte | (0x80 if value else 0))
    if not value:
      return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
  """A length-delimited field (wire type 2)."""
  return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _double(number: int, value: float) -> bytes:
  return _varint(number << 3 | 1) + struct.pack("<d", value)


def _event(step: int, **fields: bytes) -> bytes:
  """An ``Event``: wall_time (1), step (2), and the given payload fields (file_version 3, summary 5, session_log 7)."""
  numbers = {"file_version": 3, "summary": 5, "session_log": 7}
  body = _double(1, time.time()) + _varint(2 << 3) + _varint(step)
  return body + b"".join(_field(numbers[name], payload) for name, payload in fields.items())


def _summary_value(tag: str, payload: bytes) -> bytes:
  return _field(1, _field(1, tag.encode()) + payload)


def _histogram(values: np.ndarray, bins: int) -> bytes:
  """A ``HistogramProto``: min, max, num, sum, sum of squares, bucket limits and counts (packed doubles).

  Only the finite values are counted (a diverged parameter's NaNs would leave no range to bin); none: all zeros.
  """
  values = np.asarray(values, np.float64).ravel()
  values = values[np.isfinite(values)]
  if not values.size:
    return _double(3, 0.0) + _field(6, np.zeros(1, "<f8").tobytes()) + _field(7, np.zeros(1, "<f8").tobytes())
  counts, edges = np.histogram(values, bins=bins)
  return (_double(1, values.min()) + _double(2, values.max()) + _double(3, values.size) + _double(4, values.sum())
          + _double(5, float(np.dot(values, values))) + _field(6, edges[1:].astype("<f8").tobytes())
          + _field(7, counts.astype("<f8").tobytes()))


class EventFileWriter:
  """Appends TensorBoard events to a new ``events.out.tfevents.*`` file in ``logdir``.

  Examples:
    >>> import tempfile
    >>> writer = EventFileWriter(tempfile.mkdtemp())
    >>> writer.scalar('train/loss', 0.25, step=10)
    >>> writer.close()
  """

  def __init__(self, logdir: str):
    os.makedirs(logdir, exist_ok=True)
    name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}.jaxreg"
    self.path = os.path.join(logdir, name)
    self._file = open(self.path, "ab")
    self._write(_event(0, file_version=b"brain.Event:2"))

  def _write(self, data: bytes) -> None:
    length = struct.pack("<Q", len(data))
    self._file.write(length + struct.pack("<I", _masked(crc32c(length))) + data
                     + struct.pack("<I", _masked(crc32c(data))))

  def scalar(self, tag: str, value: float, step: int) -> None:
    """A scalar (``simple_value``) at ``step``."""
    value_field = _varint(2 << 3 | 5) + struct.pack("<f", value)
    self._write(_event(step, summary=_summary_value(tag, value_field)))

  def histogram(self, tag: str, values, step: int, bins: int = 30) -> None:
    """A histogram of ``values`` at ``step``, ``bins`` equal buckets between their min and max."""
    self._write(_event(step, summary=_summary_value(tag, _field(5, _histogram(values, bins)))))

  def purge_from(self, step: int) -> None:
    """Tells TensorBoard to drop the earlier files' events from ``step`` on (a ``SessionLog`` START)."""
    self._write(_event(step, session_log=_varint(1 << 3) + _varint(1)))

  def flush(self) -> None:
    self._file.flush()

  def close(self) -> None:
    self._file.close()


__all__ = ["EventFileWriter", "crc32c"]
