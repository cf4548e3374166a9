"""`dcgan-rt bench` (placeholder until its issue lands)."""

from dcgan_rt.cli.common import handle_errors
from dcgan_rt.errors import DcganRtError


@handle_errors
def bench() -> None:
    """Not implemented yet."""
    raise DcganRtError("dcgan-rt bench is not implemented yet")
