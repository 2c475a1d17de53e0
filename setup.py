"""Package discovery for setuptools (the metadata is in ``pyproject.toml``).

Every package under ``jaxreg/`` is found, so a new subpackage ships without
editing a list. The experiment configs stay at the top of the repository
(``configs/``, one file per experiment) and ship as ``jaxreg.configs``, so
``jaxreg train --config digits_mlp`` works from any directory.
``pyproject.toml``'s ``[tool.setuptools]`` cannot combine discovery with
that one mapped package, hence this file. ``tests/test_wheel.py`` builds the
wheel and checks that every module of the checkout imports from it.
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["jaxreg", "jaxreg.*"]) + ["jaxreg.configs"],
    package_dir={"jaxreg.configs": "configs"},
)
