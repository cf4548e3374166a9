"""`dcgan-rt info` (placeholder until its issue lands)."""

from dcgan_rt.cli.common import handle_errors
from dcgan_rt.errors import DcganRtError


@handle_errors
def info() -> None:
    """Not implemented yet."""
    raise DcganRtError("dcgan-rt info is not implemented yet")
