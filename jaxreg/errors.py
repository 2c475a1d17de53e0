"""Exceptions raised by jaxreg for bad input.

Every error says what is wrong and how to fix it. They subclass ``ValueError``
(or ``RuntimeError`` for checkpoints) so callers that already catch those keep
working.
"""


class ConfigError(ValueError):
  """A config names an unknown key, has a value of the wrong type, or an impossible value."""


class DataError(ValueError):
  """A dataset is malformed: missing arrays, mismatched lengths, NaN/inf, bad labels."""


class CheckpointError(RuntimeError):
  """A checkpoint is missing, incomplete or corrupt, or a work directory is in the wrong state."""


class TrainingError(RuntimeError):
  """Training cannot go on, e.g. the loss became NaN or infinite."""
