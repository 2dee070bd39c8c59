"""Carrying DECORAS to other instruments and tasks by automated search (Rezaei et al.'s second
message), on Optuna.

- :mod:`.tasks`: what a task is, and the registry of the three: :mod:`.detection` (VLBA-like
  compact sources, against photutils and the hand-designed DECORAS), :mod:`.surface_brightness`
  (LOFAR-like extended emission, against Hogbom CLEAN, :mod:`.clean`) and :mod:`.deblending`
  (VST-like blended galaxy pairs, against photutils' deblending); :mod:`.radio`, the radio images
  the first two share.
- :mod:`.space`: the search space over the DECORAS family
  (:class:`~pipeline.alma.models.EncoderDecoder`) and training choices.
- :mod:`.training`: one configuration trained and scored, at any fidelity.
- :mod:`.search`: studies in Optuna's storage (SQLite by default), pruned by Hyperband, within a
  time budget, on several worker processes; :mod:`.export`: the best configuration trained fully,
  written as weights and a model card.
"""
