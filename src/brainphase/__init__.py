"""brainphase: language-model training checkpoints versus human fMRI.

Stages (one module or package each, data flowing one way)::

    models (train / checkpoints) -> activations.h5 -> scores.h5 -> trajectory.h5 -> figures
    stimuli, fmri (simulate / load), encoding, tasks, phases, figures, io

Every stage is a ``brainphase <command>`` (see :mod:`brainphase.cli`).
"""

__version__ = "0.1.0"
