"""A too-small `input_shape` is refused naming the shape given and the sizes allowed."""

import pytest

import alexnet_keras
from alexnet_keras.geometry import min_input_side


@pytest.mark.parametrize("include_top", [True, False])
def test_the_error_names_the_input_shape_not_a_map_size(include_top):
    with pytest.raises(ValueError) as caught:
        alexnet_keras.AlexNet(input_shape=(32, 32, 3), include_top=include_top)
    message = str(caught.value)
    assert "Received: input_shape=(32, 32, 3)" in message
    assert "(1, 1)" not in message and "1x1" not in message
    assert "at least 55 pixels" in message and "224 to 227" in message


def test_one_short_side_is_named_too():
    with pytest.raises(ValueError, match=r"'conv1'.*Received: input_shape=\(10, 227, 3\)"):
        alexnet_keras.AlexNet(input_shape=(10, 227, 3), include_top=False)


@pytest.mark.parametrize("variant", ["bvlc", "caffenet", "chm2012"])
def test_the_smallest_side_is_the_one_the_builder_takes(variant):
    side = min_input_side(variant)
    model = alexnet_keras.AlexNet(variant=variant, include_top=False, input_shape=(side, side, 3))
    assert model.output_shape[1:3] == (1, 1)
    with pytest.raises(ValueError, match=f"at least {side} pixels"):
        alexnet_keras.AlexNet(
            variant=variant, include_top=False, input_shape=(side - 1, side - 1, 3)
        )
