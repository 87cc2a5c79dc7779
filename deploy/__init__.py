"""kwspi.deploy: the listening runtime (no torch, and sounddevice only for a microphone).

- :class:`Detector` -- 16 kHz samples in, :class:`Detection` events out
  (:mod:`kwspi.deploy.engine` over :mod:`kwspi.deploy.model` and
  :mod:`kwspi.deploy.ringbuffer`; the rules in :mod:`kwspi.deploy.decision`).
- :mod:`kwspi.deploy.sources` and :mod:`kwspi.deploy.mic` -- WAV files and microphones,
  resampled to 16 kHz mono.
- :mod:`kwspi.deploy.hooks` -- user code called per detection on worker threads, or in a
  process of its own (:mod:`kwspi.deploy.hookproc`).
- :func:`enroll` -- a model adapted to its user's takes, as model bytes
  (:mod:`kwspi.deploy.enroll` over :mod:`kwspi.deploy.takes`; ``kwspi enroll``).
- :mod:`kwspi.deploy.service` -- the listen loop with stop and reload, used by
  ``kwspi listen`` (:mod:`kwspi.deploy.cli`).
"""

from kwspi.deploy.decision import Detection
from kwspi.deploy.engine import Detector
from kwspi.deploy.enroll import enroll

__all__ = ["Detection", "Detector", "enroll"]
