"""Science pipeline of the explorer: ALMA cubes (``pipeline.alma``) and one-shot search.

Never imports a UI library; everything the explorer does can be done from here.
"""

__version__ = "0.1.0"
