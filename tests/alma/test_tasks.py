"""The ResNets' targets: the shape encoding respects the periodicity of an ellipse's angle."""

import numpy as np
import pytest

from pipeline.alma.tasks import shape_to_target, target_to_shape, target_to_value, value_to_target


def test_shape_round_trip_sorts_the_axes():
    target = shape_to_target([3.0, 6.0], [5.0, 2.0], [30.0, 170.0])
    major, minor, pa, e = target_to_shape(target)
    assert np.allclose(major, [5.0, 6.0]) and np.allclose(minor, [3.0, 2.0])
    assert np.allclose(pa, [30.0, 170.0]) and np.allclose(e, [0.25, 0.5])


def test_angles_across_the_wrap_are_close_targets_and_the_same_ellipse_is_one_target():
    near = shape_to_target([6.0, 6.0], [3.0, 3.0], [1.0, 179.0])
    far = shape_to_target([6.0, 6.0], [3.0, 3.0], [1.0, 91.0])
    # 1 and 179 deg are 2 deg apart as ellipses: their targets are close; 1 and 91 are not
    assert np.abs(near[0] - near[1]).max() < 0.03 < 0.5 < np.abs(far[0] - far[1]).max()
    assert np.allclose(shape_to_target(6.0, 3.0, 10.0), shape_to_target(6.0, 3.0, 190.0), atol=1e-6)


def test_a_round_source_asks_for_no_angle():
    target = shape_to_target([4.0, 4.0], [4.0, 4.0], [0.0, 60.0])
    assert np.allclose(target[0], target[1]) and np.allclose(target[:, 2:], 0.0)


def test_flux_target_is_a_log_and_other_parameters_are_refused():
    assert target_to_value("flux", value_to_target("flux", [10.0, 1000.0])) == pytest.approx([10.0, 1000.0])
    with pytest.raises(ValueError, match="shape"):
        value_to_target("pa", [30.0])
