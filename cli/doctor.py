"""`dcgan-rt doctor` (placeholder until its issue lands)."""

from dcgan_rt.cli.common import handle_errors
from dcgan_rt.errors import DcganRtError


@handle_errors
def doctor() -> None:
    """Not implemented yet."""
    raise DcganRtError("dcgan-rt doctor is not implemented yet")
