"""`dcgan-rt sample` and `dcgan-rt interpolate` (placeholders until their issue lands)."""

from dcgan_rt.cli.common import handle_errors
from dcgan_rt.errors import DcganRtError


@handle_errors
def sample() -> None:
    """Not implemented yet."""
    raise DcganRtError("dcgan-rt sample is not implemented yet")


@handle_errors
def interpolate() -> None:
    """Not implemented yet."""
    raise DcganRtError("dcgan-rt interpolate is not implemented yet")
