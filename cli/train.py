"""`dcgan-rt train` (placeholder until its issue lands)."""

from dcgan_rt.cli.common import handle_errors
from dcgan_rt.errors import DcganRtError


@handle_errors
def train() -> None:
    """Not implemented yet."""
    raise DcganRtError("dcgan-rt train is not implemented yet")
