"""Streaming evaluation: how a model does on a long recording against what was said.

- :mod:`.truth`: the truth CSV (``label,start_s,end_s`` per spoken word);
- :mod:`.score`: detections matched to it (hits, misses, false alarms), recall, false alarms
  per hour, latency;
- :mod:`.stream`: the listening engine run over a WAV, with a threshold sweep that replays
  the decisions without running the network again;
- :mod:`.plot`: the sweep drawn as a curve (needs matplotlib).

``kwspi eval-stream`` and ``kwspi demo`` both score here, with :class:`~kwspi.deploy.Detection`.
"""
