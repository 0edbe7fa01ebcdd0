"""fMRI data layer: simulated BIDS derivatives, loading into responses.h5, and noise ceilings."""
