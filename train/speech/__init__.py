"""Speech data generation, torch-free: synthesized voices, noise, streams, augmentation.

- :mod:`.engines`: the voice engines behind one interface (:mod:`.espeak`, :mod:`.mbrola`, ...);
- :mod:`.synth`: spoken words as one-second clips in Google Speech Commands' layout, and
  :mod:`.catalogue`, its split lists and ``speakers.csv``;
- :mod:`.transforms`, :mod:`.effects`: new speakers from recorded voices (formants, pitch, room, microphone);
- :mod:`.real`: recorded people from Debian packages: a real-voice test set and negatives;
- :mod:`.noise`: background-noise recordings made from seeded generators;
- :mod:`.stream`, :mod:`.texts`: long spoken streams over noise, with a truth CSV;
- :mod:`.augment`: time shift, noise, speed, EQ, reverb and SpecAugment of training clips.
"""
