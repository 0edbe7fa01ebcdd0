"""config/examples/story_roi_tables.yaml runs unchanged (issue 11, "Done when").

One story heard once as ONE run (a Praat TextGrid of the words, short format), ROI tables of
several subjects at TR 2 s whose first volume starts 20 s into the audio, planted word-rate
signal in three ROIs, and a single local model folder (no convention, no revision). The
config file is copied as it is; only the data are made here, at the paths it names.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from tests._models import build_model, train_tokenizer

REPO = Path(__file__).resolve().parents[1]
TR, FIRST_VOLUME_TIME, DURATION = 2.0, 20.0, 600.0
ROIS = ["IFG", "pSTG", "AG", "V1", "M1", "precuneus"]
N_SUBJECTS = 4


def write_story(root: Path, rng: np.random.Generator) -> np.ndarray:
    """TextGrid of words at a varying speech rate; returns the word onsets."""
    from praatio import textgrid
    from praatio.utilities.constants import Interval

    vocabulary = "the fox ran across mountains and rivers nobody followed quick brown dog lazy story".split()
    onsets, t = [], 0.5
    while t < DURATION - 1:
        onsets.append(t)
        t += rng.choice([0.25, 0.3, 0.6, 1.2])  # bursts and pauses: word rate varies over time
    words = [Interval(onset, onset + 0.2, str(rng.choice(vocabulary))) for onset in onsets]
    grid = textgrid.Textgrid()
    grid.addTier(textgrid.IntervalTier("words", words, 0, DURATION))
    grid.save(str(root / "story.TextGrid"), format="short_textgrid", includeBlankSpaces=True)
    return np.array(onsets)


def write_roi_tables(folder: Path, onsets: np.ndarray, rng: np.random.Generator) -> None:
    """Volume v covers stimulus time FIRST_VOLUME_TIME + v * TR; the first three ROIs follow the word rate."""
    from nilearn.glm.first_level import spm_hrf

    dt = 0.1
    grid = np.arange(0, DURATION + 40, dt)
    rate = np.histogram(onsets, bins=np.append(grid, grid[-1] + dt))[0].astype(float)
    bold = np.convolve(rate, spm_hrf(TR, oversampling=int(TR / dt)))[:len(grid)]
    n_volumes = int((DURATION - FIRST_VOLUME_TIME) // TR)
    signal = np.interp(FIRST_VOLUME_TIME + TR * np.arange(n_volumes), grid, bold)
    signal = (signal - signal.mean()) / signal.std()
    folder.mkdir(parents=True)
    for s in range(1, N_SUBJECTS + 1):
        table = rng.normal(size=(n_volumes, len(ROIS)))
        table[:, :3] += signal[:, None]
        pd.DataFrame(table, columns=ROIS).to_csv(folder / f"sub-{s:02d}_timeseries.tsv", sep="\t", index=False)


@pytest.mark.slow
def test_story_example_config_runs_unchanged(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "data" / "story").mkdir(parents=True)
    onsets = write_story(tmp_path / "data" / "story", rng)
    write_roi_tables(tmp_path / "data" / "story" / "roi_tables", onsets, rng)
    model_dir = tmp_path / "path" / "to" / "model"  # a plain Hugging Face folder, as a user has it
    tokenizer = train_tokenizer(model_dir)
    build_model(len(tokenizer), max_positions=128).save_pretrained(model_dir)  # the built-in task suite's items need up to ~80 tokens with this small vocabulary
    config = tmp_path / "story_roi_tables.yaml"
    shutil.copy(REPO / "config" / "examples" / "story_roi_tables.yaml", config)

    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path),
               "--configfile", str(config), "--cores", "2"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]

    results = tmp_path / "results-story"
    assert not (results / "corpus").exists()  # the demo corpus is never fetched for one's own data
    with h5py.File(results / "scores" / "my-model" / "seed0" / "steps-1--1" / "step-1.h5") as f:
        assert f.attrs["cv"] == "blocks"  # one run: blocked CV with a gap
        roi_r = f["roi_mean_r"][()].max(axis=0).mean(axis=0)  # best layer, mean over subjects, per ROI
        assert "group/r" in f and f["r"].shape[1] == N_SUBJECTS
    assert roi_r[:3].min() > 0.3 and abs(roi_r[3:]).max() < 0.15, roi_r
    with h5py.File(results / "trajectory" / "my-model" / "trajectory.h5") as f:
        assert f["phases"].attrs["status"].startswith("skipped: 1 checkpoint")
        assert "alignment_group" in f["brain"] and "alignment_beyond_baselines" in f["brain"]
        assert f["brain/alignment_group"][0, 0] > f["brain/alignment_heldout_layer"][0, 0]
    for name in ("alignment", "layers", "rois"):
        assert (results / "figures" / "my-model" / f"{name}.png").stat().st_size > 5000
    table = pd.read_csv(results / "figures" / "my-model" / "alignment_table.tsv", sep="\t")
    assert set(table.roi) == {"all ROIs", *ROIS}
    assert "brainphase: my-model" in result.stdout + result.stderr
