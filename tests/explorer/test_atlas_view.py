"""The feature atlas tab without a browser, over the one-shot tab's small survey."""

import numpy as np
import pytest

from explorer.atlas_view import AtlasViewer
from explorer.oneshot_view import OneShotViewer
from tests.explorer.test_oneshot_view import index_dir  # noqa: F401 -- the module's fixture, used by name


@pytest.fixture
def views(index_dir, monkeypatch):  # noqa: F811 -- the imported fixture, by the name pytest passes
    monkeypatch.setenv("EXPLORER_INDEX_DIRS", str(index_dir))
    oneshot = OneShotViewer()
    oneshot.activate()
    switched = []
    return oneshot, AtlasViewer(oneshot, on_prototype=lambda: switched.append(True)), switched


def test_gallery_shows_the_top_images_of_a_feature(views):
    oneshot, view, _ = views
    view.feature, view.n = 41, 4
    gallery = view.gallery()
    cards = gallery.objects[1].objects
    rows, values = oneshot.store.top_activations()
    assert len(cards) == 4
    assert cards[0].objects[1].object.startswith(str(oneshot.store.catalog["id"][rows[41, 0]]))
    assert "Feature 41" in gallery.objects[0].object
    assert "outer ring" not in gallery.objects[0].object  # 64 px input: 2 x 2 maps are all edge


def test_ranking_picks_the_best_feature_and_the_subspace_comparison(views):
    oneshot, view, _ = views
    assert not view._ranking_slot.objects  # no empty table before a ranking
    view.rank()
    assert view._ranking_slot.objects == [view._ranking_table]  # it enters the page with its rows
    assert view.ranking is not None and view.feature == int(view.ranking["feature"][0])
    assert "AUROC for bpt_class = AGN" in view.gallery().objects[0].object
    view._ranking_table.selection = [2]
    assert view.feature == int(view.ranking["feature"][2])
    view.subset = 20
    view.compare_subspace()
    text = view._comparison.object
    assert "all 1280 features" in text and "best 20 features" in text and "base rate" in text


def test_contributions_and_search_from_an_image(views):
    oneshot, view, switched = views
    assert "sum over all" in view.contributions_plot().objects[0].object.opts.get().kwargs["title"]
    _, values = oneshot.store.top_activations()
    view.feature = int(np.argmax(values[:, 1]))  # one that fires on more than one image
    card = view.gallery().objects[1].objects[1]
    card.objects[2].clicks += 1
    gid = card.objects[1].object.split(" |")[0].split("\n")[0]
    assert oneshot.prototype == gid and switched == [True]


def test_a_feature_that_barely_fires_says_so_and_shows_only_images_it_activates(views):
    """Issue 13, item 14: no gallery of ties at zero; the stated activation is on the colour bar's scale."""
    oneshot, view, _ = views
    _, values = oneshot.store.top_activations()
    quiet = int(np.argmin(values[:, 0]))
    view.feature, view.n = quiet, 12
    gallery = view.gallery()
    title = gallery.objects[0].object
    assert values[quiet, 0] < 0.05 and "barely fires" in title, title
    assert len(gallery.objects[1].objects) == int((values[quiet, :12] >= max(0.05 * values[quiet, 0], 1e-6)).sum()) < 12
    busy = int(np.argmax(values[:, 0]))
    view.feature = busy
    title = view.gallery().objects[0].object
    assert "barely" not in title and "the map's mean" in title


def test_a_feature_number_the_store_lacks_is_refused_with_a_message(views):
    oneshot, view, _ = views
    view.feature = 12
    view._feature_input.value = 5000
    assert view.feature == 12 and view._feature_input.value == 12
    assert view._error.visible and "Feature 5000 does not exist" in view._error.object
    view._feature_input.value = 40
    assert view.feature == 40 and not view._error.visible


def test_a_feature_before_any_set_is_open_says_to_open_one(index_dir, monkeypatch):  # noqa: F811
    monkeypatch.setenv("EXPLORER_INDEX_DIRS", str(index_dir))
    view = AtlasViewer(OneShotViewer())  # the one-shot tab never shown: no set open
    view._feature_input.value = 3
    assert view.feature == 835 and view._feature_input.value == 835
    assert "Open a galaxy set" in view._error.object


def test_the_gallery_follows_the_feature_once_shown_and_reuses_its_cards(views):
    """Nothing is drawn (no feature maps made) until the tab is shown; then each new feature changes
    the cards' images and captions in place."""
    oneshot, view, _ = views
    title, flex = view._gallery.objects
    _, values = oneshot.store.top_activations()
    busy = np.argsort(-values[:, 11])[:2]  # two features with 12 active images
    view.feature = int(busy[0])
    assert title.object == "" and not flex.objects
    view.activate()
    assert f"Feature {busy[0]}" in title.object and len(flex.objects) == 12
    cards, images = list(flex.objects), [card.objects[0].object for card in flex.objects]
    view.feature = int(busy[1])
    assert f"Feature {busy[1]}" in title.object
    assert all(a is b for a, b in zip(flex.objects, cards, strict=True))
    assert [card.objects[0].object for card in flex.objects] != images


def test_a_feature_firing_on_the_edge_is_flagged():
    from explorer.atlas_view import _edge_note

    frame = np.ones((3, 7, 7))
    frame[:, 1:-1, 1:-1] = 0.05
    assert "Beware" in _edge_note(frame) and "responds to the image's edge" in _edge_note(frame)
    inside = np.zeros((3, 7, 7))
    inside[:, 2:5, 2:5] = 1
    assert "Beware" not in _edge_note(inside) and "0% of its activation" in _edge_note(inside)
    assert _edge_note(np.zeros((0, 7, 7))) == ""
