"""Exceptions a user can act on.

Every bad-input error raised by ``core`` is a :class:`UserError`. Front ends (CLI, pages,
notebooks) show ``str(error)`` as one line; the CLI exits with status 2. Anything else is a bug
or a training failure and is reported as such.
"""


class UserError(ValueError):
    """Bad input: the message says what was wrong and what to do instead."""


class BackendError(UserError):
    """Keras is not (or cannot be) on the JAX backend."""


class DatasetError(UserError):
    """A dataset spec or file cannot be used."""


class DatasetUnavailable(DatasetError):
    """A known dataset is not on this machine and cannot be downloaded."""


class ConfigError(UserError):
    """A training or sampling configuration is invalid."""


class RunNotFound(UserError):
    """No run with that id in the store."""


class ModelFileError(UserError):
    """A model file is missing, unsafe or of the wrong kind."""


class TrainingFailed(RuntimeError):
    """Training stopped on its own (e.g. NaN loss); the run is marked ``failed``."""
