"""Science pipeline of the explorer: ALMA cubes (``pipeline.alma``) and one-shot search.

Never imports a UI library; everything the explorer does can be done from here.
"""

import os

__version__ = "0.1.0"

# faiss and torch each bring an OpenMP runtime whose idle threads spin for a while after each
# parallel region; in one process on few cores they then take the cores from each other (a
# single query of a compressed index of 10^7 galaxies: 16 ms at p50 with spinning, 4.5 ms
# without). Read when the runtimes load, so set here, before either is imported; a value the
# user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
