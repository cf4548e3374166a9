"""`dcgan-rt export` (placeholder until its issue lands)."""

from dcgan_rt.cli.common import handle_errors
from dcgan_rt.errors import DcganRtError


@handle_errors
def export() -> None:
    """Not implemented yet."""
    raise DcganRtError("dcgan-rt export is not implemented yet")
