"""The feature atlas: what each of the 1280 features responds to, which features separate a
label, and searching on the features that matter (ULISSE's interpretation step, taken further).

- Top activations: for every feature, the ``TOP_K`` images of a store with the largest value,
  computed once when the store is built (:func:`top_activations`), so browsing is a lookup.
- Feature maps: that channel of the network's last convolutional layer (before pooling) for the
  few images shown, upsampled and drawn over the cutout (:func:`overlay`); computed on demand
  and cached on disk. The pooled feature is the map's mean.
- Ranking: AUROC of each feature for a label (positive vs the rest), with the Hanley & McNeil
  (1982) 95% interval (:func:`rank_features`).
- Contributions: each feature's share of the cosine similarity between a prototype and its
  neighbours, u_k v_k on unit vectors, so the shares sum to the similarity (:func:`contributions`).
- Sub-space search: the one-shot search on a subset (or a weighting) of the features
  (:func:`subspace_search`), to compare with the search on all of them.
- Edge share: how much of a feature map's activation lies in its outermost ring of cells
  (:func:`edge_share`), against that ring's share of the cells: a feature that fires on the image's
  edge (the network's zero padding, an upsampled cutout's frame) rather than on the galaxy.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
from astropy.table import Table
from scipy import stats

from pipeline.atomic import atomic_write
from pipeline.cache import cache_dir
from pipeline.errors import InputError
from pipeline.oneshot.index import FeatureIndex
from pipeline.oneshot.stats import is_positive, labelled

TOP_K = 100
EDGE_IMAGES = 20  # a feature's edge share: over the maps of the galaxies that activate it most
EDGE_WARNING = 0.5  # a feature fires on the edge when its ring holds this much of what it could beyond an even share


def top_activations(features: np.ndarray, k: int = TOP_K) -> tuple[np.ndarray, np.ndarray]:
    """Per feature, the rows of its ``k`` largest values, largest first: (rows (dim, k) int32,
    values (dim, k) float32). Fewer than k images: k = their number."""
    n, dim = features.shape
    k = min(int(k), n)
    rows, values = np.empty((dim, k), np.int32), np.empty((dim, k), np.float32)
    for start in range(0, dim, 64):  # 64 features at a time: a million images stay a few 100 MB
        block = -np.asarray(features[:, start:start + 64], np.float32).T  # (features, images)
        part = np.argpartition(block, k - 1, axis=1)[:, :k]
        top = -np.take_along_axis(block, part, axis=1)
        order = np.argsort(-top, axis=1, kind="stable")
        rows[start:start + 64] = np.take_along_axis(part, order, 1)
        values[start:start + 64] = np.take_along_axis(top, order, 1)
    return rows, values


def check_feature(store, feature) -> int:
    k = int(feature)
    if not 0 <= k < store.features.shape[1]:
        raise InputError(f"Feature {feature} does not exist: this store's features are numbered 0 to "
                         f"{store.features.shape[1] - 1}.")
    return k


def feature_maps(store, feature: int, rows) -> np.ndarray:
    """Channel ``feature`` of the last convolutional layer for the images at ``rows``: (n, h, w)
    (:func:`channel_maps`)."""
    feature = check_feature(store, feature)
    return channel_maps(store, rows, feature)


def maps_folder(store) -> Path:
    """Where the feature maps of ``store``'s images are cached (every channel of an image in one file)."""
    key = hashlib.sha1(f"{store.folder.resolve()}|{store.meta.get('build', '')}".encode()).hexdigest()[:16]
    return cache_dir("feature-maps", key)


def channel_maps(store, rows, channel=None) -> np.ndarray:
    """Every channel of the last convolutional layer for the images at ``rows``, (n, C, h, w)
    float32, or only ``channel``, (n, h, w); made as the store's features were (model, input size,
    the view of each galaxy: :meth:`FeatureStore.view`, upright) and cached on disk per store, every
    channel of an image at once."""
    rows = [int(r) for r in rows]
    folder = maps_folder(store)
    pick = slice(None) if channel is None else channel
    maps, missing = {}, []
    for r in rows:
        path = folder / f"{r}.npy"
        if path.is_file():
            maps[r] = np.load(path, mmap_mode="r")[pick]
        else:
            missing.append(r)
    if missing:
        from pipeline.oneshot import features as feat  # torch: only where a network runs

        model = feat.load_backbone(store.meta["backbone"], store.meta.get("weights") or None)
        computed = _upright_maps(feat, model, [store.view(r) for r in missing], store.meta)
        for r, m in zip(missing, computed, strict=True):
            with atomic_write(folder / f"{r}.npy") as tmp:  # every channel: the next feature is free
                with open(tmp, "wb") as f:
                    np.save(f, m.astype(np.float16))
            maps[r] = m[pick]
    return np.stack([np.asarray(maps[r], np.float32) for r in rows])


def _upright_maps(feat, model, shown: list[np.ndarray], meta: dict) -> np.ndarray:
    """Feature maps (n, C, h, w) of the views ``shown``: of each as it is, or, for a store whose
    features average the eight rotations and flips, the maps of the eight turned back upright and
    averaged (so that a map's mean is still the stored feature)."""
    from pipeline.oneshot import views

    size = meta["input_px"]
    if meta.get("invariance") != "dihedral":
        return feat.feature_maps(model, shown, size=size)
    total = 0
    for k in range(8):
        turned = feat.feature_maps(model, [views.turn(v, k) for v in shown], size=size)
        upright = turned[..., ::-1] if k % 2 else turned  # undo the mirror, then the quarter turns
        total = total + np.rot90(upright, -(k // 2), axes=(2, 3))
    return np.ascontiguousarray(total / 8)


def edge_share(maps: np.ndarray) -> np.ndarray:
    """Per map (n, h, w): the share of its activation in the outermost ring of cells (NaN for a
    map that is all zero). Where the activation spreads evenly the share is the ring's share of
    the cells, :func:`edge_cells_share` (24/49 at 7 x 7); near 1, the feature responds to the
    image's edge, not to what is in it."""
    maps = np.clip(np.asarray(maps, np.float64), 0, None)
    total = maps.sum(axis=(1, 2))
    inner = maps[:, 1:-1, 1:-1].sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 1 - inner / total, np.nan)


def edge_cells_share(h: int, w: int) -> float:
    """The outermost ring's share of the cells of an h x w map."""
    return 1 - max(h - 2, 0) * max(w - 2, 0) / (h * w)


def on_edge(share: float, even: float) -> bool:
    """Whether an edge share ``share`` (where an even spread gives ``even``) says the feature responds
    to the image's edge: at least ``EDGE_WARNING`` of the way from an even spread to all of it (74%
    at 7 x 7 cells). Never on maps too small to have an inside (``even`` 1: every cell is on the ring)."""
    return bool(np.isfinite(share) and even < 1 and (share - even) / (1 - even) >= EDGE_WARNING)


def edge_shares(store, rows) -> tuple[np.ndarray, float]:
    """Per feature, the share of its activation on the maps' outer ring, summed over the images at
    ``rows`` (a sample of the set: a feature that answers to the frame does so on every image), NaN
    for a feature that never fires on them; and the ring's share of the cells."""
    maps = np.clip(channel_maps(store, rows), 0, None)  # (n, C, h, w)
    total = maps.sum(axis=(0, 2, 3))
    inner = maps[:, :, 1:-1, 1:-1].sum(axis=(0, 2, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total > 0, 1 - inner / total, np.nan)
    return share, edge_cells_share(*maps.shape[2:])


def feature_edge_share(store, feature: int, images: int = EDGE_IMAGES) -> tuple[float, float]:
    """(mean :func:`edge_share` of ``feature``'s maps over the ``images`` galaxies that activate it
    most, the ring's share of the cells)."""
    feature = check_feature(store, feature)
    top_rows, _ = store.top_activations()
    maps = feature_maps(store, feature, top_rows[feature, :images])
    return float(np.nanmean(edge_share(maps))), edge_cells_share(*maps.shape[1:])


INFERNO_HEX = (  # matplotlib's inferno (CC0, van der Walt & Smith), 256 RGB colours
    "00000300000400000601000701010901010b02010e02021003021204031404031605041806041b07051d08061f090621"
    "0a07230b07260d08280e082a0f092d10092f120a32130a34140b36160b39170b3b190b3e1a0b401c0c431d0c451f0c47"
    "200c4a220b4c240b4e260b50270b52290b542b0a562d0a582e0a5a300a5c32095d34095f3509603709613909623b0964"
    "3c09653e0966400966410967430a68450a69460a69480b6a4a0b6a4b0c6b4d0c6b4f0d6c500d6c520e6c530e6d550f6d"
    "570f6d58106d5a116d5b116e5d126e5f126e60136e62146e63146e65156e66156e68166e6a176e6b176e6d186e6e186e"
    "70196e72196d731a6d751b6d761b6d781c6d7a1c6d7b1d6c7d1d6c7e1e6c801f6b811f6b83206b85206a86216a88216a"
    "8922698b22698d23698e24689024689125679325679526669626669827659928649b28649c29639e2963a02a62a12b61"
    "a32b61a42c60a62c5fa72d5fa92e5eab2e5dac2f5cae305baf315bb1315ab23259b43358b53357b73456b83556ba3655"
    "bb3754bd3753be3852bf3951c13a50c23b4fc43c4ec53d4dc73e4cc83e4bc93f4acb4049cc4148cd4247cf4446d04544"
    "d14643d24742d44841d54940d64a3fd74b3ed94d3dda4e3bdb4f3adc5039dd5238de5337df5436e05634e25733e35832"
    "e45a31e55b30e65c2ee65e2de75f2ce8612be9622aea6428eb6527ec6726ed6825ed6a23ee6c22ef6d21f06f1ff0701e"
    "f1721df2741cf2751af37719f37918f47a16f57c15f57e14f68012f68111f78310f7850ef8870df8880cf88a0bf98c09"
    "f98e08f99008fa9107fa9306fa9506fa9706fb9906fb9b06fb9d06fb9e07fba007fba208fba40afba60bfba80dfbaa0e"
    "fbac10fbae12fbb014fbb116fbb318fbb51afbb71cfbb91efabb21fabd23fabf25fac128f9c32af9c52cf9c72ff8c931"
    "f8cb34f8cd37f7cf3af7d13cf6d33ff6d542f5d745f5d948f4db4bf4dc4ff3de52f3e056f3e259f2e45df2e660f1e864"
    "f1e968f1eb6cf1ed70f1ee74f1f079f1f27df2f381f2f485f3f689f4f78df5f891f6fa95f7fb99f9fc9dfafda0fcfea4"
)


def inferno_lut() -> np.ndarray:
    """The inferno colour map as a lookup table: (256, 3) uint8 RGB, dark to bright."""
    return np.frombuffer(bytes.fromhex("".join(INFERNO_HEX)), np.uint8).reshape(256, 3)


def overlay(rgb: np.ndarray, feature_map: np.ndarray, vmax: float | None = None, px: int = 192,
            alpha: float = 0.55, mark: float | None = None, image_format: str = "PNG") -> bytes:
    """The cutout with a feature map upsampled (bilinear) over it in the inferno colour map, and
    a colour bar from 0 to ``vmax`` (default the map's maximum) on the right, with an arrow at
    ``mark`` (e.g. the map's mean, the feature's activation); the bytes of an image file in
    ``image_format``: "PNG" (lossless, for files) or "JPEG" (quality 90, a fifth of the bytes and
    encoded four times faster, for the screen)."""
    from PIL import Image, ImageDraw

    lut = inferno_lut()
    top = float(vmax if vmax is not None else max(float(np.max(feature_map)), 1e-12))
    scaled = np.clip(np.asarray(feature_map, np.float32) / top, 0, 1)
    heat = Image.fromarray((scaled * 255).astype(np.uint8)).resize((px, px), Image.BILINEAR)
    colour = lut[np.asarray(heat)]
    base = np.asarray(Image.fromarray(rgb).resize((px, px), Image.BILINEAR), np.float32)
    blended = ((1 - alpha) * base + alpha * colour).astype(np.uint8)
    bar_w, pad = 14, 44
    canvas = Image.new("RGB", (px + bar_w + pad, px), "white")
    canvas.paste(Image.fromarray(blended), (0, 0))
    bar = np.repeat(lut[::-1][np.linspace(0, 255, px).astype(int)][:, None], bar_w, axis=1)
    canvas.paste(Image.fromarray(bar), (px + 4, 0))
    draw = ImageDraw.Draw(canvas)
    draw.text((px + bar_w + 6, 0), f"{top:.3g}", fill="black")
    draw.text((px + bar_w + 6, px - 12), "0", fill="black")
    if mark is not None and np.isfinite(mark):
        y = round((1 - min(max(mark / top, 0.0), 1.0)) * (px - 1))
        draw.polygon([(px + bar_w + 4, y), (px + bar_w + 11, y - 5), (px + bar_w + 11, y + 5)], fill="black")
        draw.line([(px + 4, y), (px + 3 + bar_w, y)], fill="white", width=2)
    buffer = io.BytesIO()
    canvas.save(buffer, image_format, **({"quality": 90} if image_format == "JPEG" else {}))
    return buffer.getvalue()


def rank_features(store, column: str, positive) -> Table:
    """Every feature's AUROC for ``column == positive`` (galaxies without a value left out), with
    the Hanley & McNeil 95% interval; sorted by how far from 0.5 (either direction separates).
    Columns: ``feature, auroc, low, high, separation`` (= |auroc - 0.5|), ``direction``
    ("higher" when the positive galaxies have larger values)."""
    if column not in store.catalog.colnames:
        raise InputError(f"The catalogue has no column {column!r}.")
    has = labelled(store.catalog[column])
    hit = is_positive(store.catalog[column], positive)[has]
    n1, n0 = int(hit.sum()), int((~hit).sum())
    if not n1 or not n0:
        raise InputError(f"{column} = {positive!r} needs both positive and other labelled galaxies "
                         f"(found {n1} and {n0}).")
    x = np.asarray(store.features, np.float32)[has]
    ranks = stats.rankdata(x, axis=0)
    auc = (ranks[hit].sum(axis=0) - n1 * (n1 + 1) / 2) / (n1 * n0)
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)  # Hanley & McNeil's standard error
    se = np.sqrt(np.clip(auc * (1 - auc) + (n1 - 1) * (q1 - auc**2) + (n0 - 1) * (q2 - auc**2), 0, None) / (n1 * n0))
    table = Table({"feature": np.arange(x.shape[1]), "auroc": auc, "low": np.clip(auc - 1.96 * se, 0, 1),
                   "high": np.clip(auc + 1.96 * se, 0, 1), "separation": np.abs(auc - 0.5),
                   "direction": np.where(auc >= 0.5, "higher", "lower")})
    table.meta.update(column=column, positive=str(positive), n_positive=n1, n_other=n0)
    table.sort("separation", reverse=True)
    return table


def contributions(store, prototype, neighbours) -> np.ndarray:
    """Per feature, its mean share of the cosine similarity between ``prototype`` (an id or a
    vector) and each of ``neighbours`` (ids): u_k v_k on unit vectors; (dim,), summing to the
    mean similarity."""
    from pipeline.oneshot.search import features_of, unit_rows

    u = unit_rows(features_of(store, prototype)[None])[0]
    if not len(neighbours):
        return np.zeros_like(u)
    v = unit_rows(np.stack([features_of(store, i) for i in neighbours]))
    return (u[None] * v).mean(axis=0)


def subspace_search(store, prototype, n: int, features=None, weights=None) -> Table:
    """One-shot search in the space of the network's chosen ``features`` (indices) or with
    per-feature ``weights`` (dim,), cosine, without the store's invariance head (it mixes the
    features); the same columns as :func:`pipeline.oneshot.search.one_shot`."""
    from pipeline.oneshot import search

    dim = store.features.shape[1]
    w = np.zeros(dim, np.float32)
    if features is not None:
        chosen = [check_feature(store, k) for k in features]
        if not chosen:
            raise InputError("Choose at least one feature to search on.")
        w[chosen] = 1.0
    elif weights is not None:
        w = np.asarray(weights, np.float32)
        if w.shape != (dim,) or not np.any(w):
            raise InputError(f"weights must be {dim} numbers, not all zero.")
    else:
        w[:] = 1.0
    weighted = np.asarray(store.features, np.float32) * w
    used = int(np.count_nonzero(w))
    sub = _Subspace(store, weighted, FeatureIndex.build(weighted, metric="cosine", kind="exact"),
                    f"{store.meta['model_label']}, {used} of its {dim} features (weighted)")
    proto = prototype * w if isinstance(prototype, np.ndarray) else prototype
    return search.one_shot(sub, proto, n)


class _Subspace:
    """A store seen through weighted features (what :mod:`search` needs of a store)."""

    def __init__(self, store, features, index, model_label: str):
        self.catalog, self.features, self.index, self.row_of = store.catalog, features, index, store.row_of
        self.meta = {**store.meta, "model_label": model_label}

    @staticmethod
    def search_space(features) -> np.ndarray:
        return np.asarray(features, np.float32)  # the network's own features, weighted


def write_top_activations(store, feature: int, n: int, out) -> Path:
    """PNG overlays of the ``n`` images that activate ``feature`` most, and ``top.csv`` (rank, id,
    activation); ``out`` is created. Returns the CSV's path."""
    feature = check_feature(store, feature)
    rows, values = store.top_activations()
    n = min(int(n), rows.shape[1])
    if n < 1:
        raise InputError("n must be at least 1.")
    chosen = rows[feature, :n]
    maps = feature_maps(store, feature, chosen)
    vmax = float(maps.max()) if maps.size else 1.0
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ids = [str(store.catalog["id"][r]) for r in chosen]
    for rank, (r, gid, m) in enumerate(zip(chosen, ids, maps, strict=True), start=1):
        with atomic_write(out / f"feature{feature:04d}_{rank:03d}_{_safe(gid)}.png") as tmp:
            tmp.write_bytes(overlay(store.view(int(r)), m, vmax))
    table = Table({"rank": np.arange(1, n + 1), "id": ids, "activation": values[feature, :n]})
    table.meta["feature"] = feature
    with atomic_write(out / "top.csv") as tmp:
        table.write(tmp, format="ascii.csv", overwrite=True)
    return out / "top.csv"


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)[:60]

