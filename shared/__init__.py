"""The contract between expd's daemon and its clients: file formats, paths and the headless CLI.

Imports only the standard library and msgspec, so `expd status` starts in milliseconds.
"""

__version__ = "0.1.0"
