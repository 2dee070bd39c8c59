"""A sharded index on Dask workers answers as one compressed index of the same rows."""

import numpy as np
import pytest

from pipeline.errors import InputError
from pipeline.oneshot import index as ix
from pipeline.oneshot.shards import ShardedIndex, build_shards
from tests.oneshot.test_index import clustered


def test_shards_answer_as_one_index(tmp_path):
    x = clustered(5000, seed=3)
    np.save(tmp_path / "features.npy", x)
    build_shards(tmp_path / "features.npy", tmp_path / "sharded", 3, scheduler="local")
    # one index with the same training, searching as the sharded one was tuned to
    one = ix.train_compressed(x).filled(x, 0, len(x), tmp_path / "one")
    queries = x[::100] + np.random.default_rng(4).normal(size=(50, 64)).astype(np.float32)
    with ShardedIndex.open(tmp_path / "sharded") as sharded:
        assert sharded.info.n == 5000 and sharded.info.recall >= ix.RECALL_TARGET
        assert "in 3 shards" in sharded.describe()
        one.info.nprobe, one.info.rerank = sharded.info.nprobe, sharded.info.rerank
        d, rows = sharded.search(queries, 20)
        d1, rows1 = one.search(queries, 20)
        np.testing.assert_array_equal(rows, rows1)
        np.testing.assert_allclose(d, d1, atol=1e-6)
        exact = ix.FeatureIndex.build(x, kind="exact")
        _, truth = exact.search(queries, 20)
        assert np.mean([len(np.intersect1d(a, b)) / 20 for a, b in zip(rows, truth, strict=True)]) >= 0.9
    with pytest.raises(InputError, match="shards.json is missing"):
        ShardedIndex.open(tmp_path)
    with pytest.raises(InputError, match="number of shards"):
        build_shards(tmp_path / "features.npy", tmp_path / "bad", 0, scheduler="synchronous")
