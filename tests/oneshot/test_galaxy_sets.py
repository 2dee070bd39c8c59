"""Finding the galaxy sets to search: feature stores in folders, then the embedded sets."""

import os

from pipeline.oneshot import galaxy_sets


def test_stores_are_found_in_folders_and_one_level_down(tmp_path):
    root, outside = tmp_path / "indexes", tmp_path / "elsewhere"
    for folder in (root, root / "b", root / "a", root / ".building", root / "empty", outside / "c"):
        folder.mkdir(parents=True)
    for folder in (root, root / "b", root / "a", root / ".building", outside / "c"):
        (folder / "store.json").write_text("{}")
    os.symlink(outside / "c", root / "link")  # leads out of its root: not followed
    found = galaxy_sets.find_stores([root])
    assert found == {"indexes (index)": root, "a (index)": root / "a", "b (index)": root / "b"}
    sets = galaxy_sets.available_sets([root])
    assert list(sets) == [*found, galaxy_sets.SIMULATED_SET_NAME, galaxy_sets.HDF_SET_NAME]
    assert sets[galaxy_sets.SIMULATED_SET_NAME] is None and sets[galaxy_sets.HDF_SET_NAME] is None
