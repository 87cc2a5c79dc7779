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
from kwspi.features import FeatureConfig, StreamingMfcc, mfcc  # noqa: E402

__all__ = ["FeatureConfig", "KwspiError", "StreamingMfcc", "mfcc", "__version__"]
