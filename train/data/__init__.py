"""Training and evaluation data: GSC-layout clips to cached MFCC features (torch-free).

- :mod:`.dataset`: :func:`load_split`, one split as a :class:`FeatureSet`;
- :mod:`.example`: one clip to features, augmented or not;
- :mod:`.pool`: many examples at once, in worker processes;
- :mod:`.cache`: the features on disk, keyed by what made them.
"""

from kwspi.train.data.dataset import DEFAULT_VIEWS, FeatureSet, LoadStats, load_split

__all__ = ["DEFAULT_VIEWS", "FeatureSet", "LoadStats", "load_split"]
