"""What the command line reports in one line: the errors a user can cause, and a command that
ran but did not succeed."""

from keras_convit.data.scan import DatasetUnavailableError
from keras_convit.job.config import ConfigError
from keras_convit.job.directory import RunDirectoryError
from keras_convit.job.lock import RunLockedError

# What a user can cause by their arguments, files or environment: one line, exit status 2.
USER_ERRORS = (
    ConfigError,
    RunDirectoryError,
    RunLockedError,
    DatasetUnavailableError,
    ValueError,
    OSError,
    ImportError,
)
USAGE_ERROR_STATUS = 2


class CommandFailed(Exception):
    """A command ran but did not succeed; its message is printed and `status` returned."""

    def __init__(self, message, status=1):
        super().__init__(message)
        self.status = status
