"""Emergence statistics across seeds: distributions, bimodality, success probability,
Wasserstein distances between checkpoints, sharpness and the mirage check, threshold crossings
(in tokens or loss), and which metric tracks brain alignment.

Every metric is an array of shape (n_seeds, n_steps); tokens are (n_steps,). See the README
section "Emergence statistics (library)".
"""

from brainphase.emergence.distributions import (Bimodality, SeedDistribution, SuccessProbability,
                                                bimodality, clopper_pearson, seed_distribution,
                                                success_probability, wasserstein_between,
                                                wasserstein_steps)
from brainphase.emergence.sharpness import MirageCheck, mirage_check, sharpness
from brainphase.emergence.tracking import Crossing, crossing, tracking_table

__all__ = ["Bimodality", "Crossing", "MirageCheck", "SeedDistribution", "SuccessProbability",
           "bimodality", "clopper_pearson", "crossing", "mirage_check", "seed_distribution",
           "sharpness", "success_probability", "tracking_table", "wasserstein_between",
           "wasserstein_steps"]
