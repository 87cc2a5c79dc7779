"""kwspi: streaming keyword spotting for the Raspberry Pi.

The shared core, importable without torch or sounddevice:

- :mod:`kwspi.features` -- the MFCC front end (:class:`FeatureConfig`, :func:`mfcc`,
  :class:`StreamingMfcc`), one definition for training and runtime.
- :mod:`kwspi.wavio` -- reading and writing PCM WAV files.
- :mod:`kwspi.gsc` -- the Google Speech Commands folder layout, labels and split rule.

Training lives in :mod:`kwspi.train` (needs ``pip install 'kwspi[train]'``), the
listening runtime in :mod:`kwspi.deploy`.
"""

__version__ = "0.1.0"

from kwspi.errors import KwspiError  # noqa: E402

__all__ = ["FeatureConfig", "KwspiError", "StreamingMfcc", "mfcc", "__version__"]


def __getattr__(name):
    # The front end loads scipy (a third of a second on a Pi) and is imported on first use,
    # so `kwspi listen` can take SIGHUP and Ctrl-C before anything heavy is loaded.
    if name in ("FeatureConfig", "StreamingMfcc", "mfcc"):
        from kwspi import features

        return getattr(features, name)
    raise AttributeError(f"module 'kwspi' has no attribute {name!r}")
