"""`dcgan-rt generate` (placeholder until its issue lands)."""

from dcgan_rt.cli.common import handle_errors
from dcgan_rt.errors import DcganRtError


@handle_errors
def generate() -> None:
    """Not implemented yet."""
    raise DcganRtError("dcgan-rt generate is not implemented yet")
