"""The trainer of gradient-trained models (models/trainable.py is the protocol it drives): ``loop`` (the epoch
loop, ``train``), ``checkpoints`` (epoch checkpoints, CSV logs), ``validation`` (hold-out and metrics),
``summary`` (best/worst epoch, the training record), ``divergence`` (the rule of claim C5), ``profiles`` (the
CLI's profile names). Import the module you need; this package imports nothing, so the CLI can read the
profiles without loading the loop."""
