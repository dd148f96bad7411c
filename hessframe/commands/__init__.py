"""The core's own commands, ``spectrum`` and ``train-digits``, added by its built-in plugin."""

from hessframe.commands.spectrum import spectrum_command
from hessframe.commands.train_digits import train_digits_command

__all__ = ["spectrum_command", "train_digits_command"]
