"""Errors a user can cause.

Library code raises these; the CLI turns each into one line on stderr and exit status 2.
Anything else is a programming error and keeps its traceback.
"""


class KwspiError(Exception):
    """Base class for errors caused by input: files, devices, options."""


class WavError(KwspiError):
    """A file that cannot be read as PCM WAV audio."""

    def __init__(self, path, reason):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class FeatureConfigError(KwspiError):
    """A front-end description this version of kwspi cannot reproduce."""


class DatasetError(KwspiError):
    """A folder that is not in Google Speech Commands layout, or lacks what a split needs."""


class MissingDependency(KwspiError):
    """An optional dependency is not installed; the message names the pip command."""
