"""`dcgan-rt evaluate` (placeholder until its issue lands)."""

from dcgan_rt.cli.common import handle_errors
from dcgan_rt.errors import DcganRtError


@handle_errors
def evaluate() -> None:
    """Not implemented yet."""
    raise DcganRtError("dcgan-rt evaluate is not implemented yet")
