"""``python -m jaxreg``: the ``jaxreg`` command, for environments where the console script is not on ``PATH``."""

from jaxreg.cli import console_main

if __name__ == "__main__":
  console_main()
