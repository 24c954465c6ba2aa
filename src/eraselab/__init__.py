"""eraselab: cached, pipeline-orchestrated reproduction of concept-erasure defences.

Importing the package is cheap (no torch): the CLI validates params and the Snakefile reads the schema
before any heavy import. Modules that use torchvision-dependent libraries import ``eraselab._compat``
first, which makes torchvision importable on the CPU machines.
"""

__version__ = "0.1.0"
