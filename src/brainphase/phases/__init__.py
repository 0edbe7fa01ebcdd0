"""Brain alignment over training and the phases of Nakagi et al. (2025, arXiv:2502.20779).

Modules, one job each:

- :mod:`brainphase.phases.aggregate`: ``brainphase aggregate``, per-checkpoint scores and task
  metrics -> ``metrics.h5`` (arrays over seeds x steps, alignment summaries);
- :mod:`brainphase.phases.collect`: task metrics ``/metrics/{task}/{metric}`` and internal metrics
  ``/internal/{name}`` of every checkpoint, checked alike, for ``aggregate``;
- :mod:`brainphase.phases.segment`: continuous piecewise-linear segmentation over log10 tokens;
- :mod:`brainphase.phases.piecewise`: the knot search of the continuous piecewise-linear fit;
- :mod:`brainphase.phases.noise`: the standard error of the seed-mean curve each segmentation is weighted with;
- :mod:`brainphase.phases.naming`: phase names of the segments, task changes per segment;
- :mod:`brainphase.phases.label`: :func:`~brainphase.phases.label.analyse_trajectory`, segmentation, names and bootstrap uncertainty;
- :mod:`brainphase.phases.cli`: ``brainphase phases``, ``metrics.h5`` or a table -> ``trajectory.h5``;
- :mod:`brainphase.phases.read`: :func:`load_trajectory`.
"""
