"""Speech data generation, torch-free: synthesized voices, noise, streams, augmentation.

- :mod:`.synth`: spoken words as one-second clips in Google Speech Commands' layout;
- :mod:`.noise`: background-noise recordings made from seeded generators;
- :mod:`.stream`: long spoken streams over noise, with a truth CSV;
- :mod:`.augment`: time shift, noise, speed, EQ, reverb and SpecAugment of training clips.
"""
