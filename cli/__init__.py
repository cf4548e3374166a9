"""Command-line tier (imports as dcgan_rt.cli): one Typer app; the one place where
errors become exit codes. Command modules import torch and friends lazily, inside
the command, so `dcgan-rt --help` stays fast."""
