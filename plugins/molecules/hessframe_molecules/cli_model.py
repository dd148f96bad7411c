"""Commands of the molecules plugin (filled in by its owner)."""

COMMANDS = ()
