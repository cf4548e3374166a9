"""Errors users see: every message says what went wrong and what to do next.

The CLI turns `UsageError` into exit code 2 and every other `DcganRtError` into
exit code 1, printed as one line (the traceback only with --debug).
"""


class DcganRtError(Exception):
    """A failure the message explains; the CLI exits 1."""

    exit_code = 1


class UsageError(DcganRtError):
    """Bad arguments or options; the CLI exits 2."""

    exit_code = 2


class MissingDependencyError(DcganRtError):
    """An optional package is needed for this path; the message names what to install."""

    def __init__(self, package: str, purpose: str, extra: str | None = None):
        hint = f"pip install 'dcgan-rt[{extra}]'" if extra else f"pip install {package}"
        super().__init__(f"{purpose} needs {package}, which is not installed: {hint}")
        self.package = package


class ArtifactError(DcganRtError):
    """A model file is missing, corrupt, or not a dcgan-rt artifact."""


class DataError(DcganRtError):
    """A training data set is missing, empty or unreadable; the message says where to put it."""


class NumericalError(DcganRtError):
    """NaN/inf or a parity bound exceeded."""
