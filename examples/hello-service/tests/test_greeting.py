import pytest

from hello_service.greeting import greet, normalise_name


def test_default_name_is_world():
    assert greet(None) == "Hello, world."


@pytest.mark.parametrize("raw, expected", [("  Ada  ", "Ada"), ("Grace   Hopper", "Grace Hopper"), ("", "world")])
def test_normalise_name(raw, expected):
    assert normalise_name(raw) == expected


def test_long_names_are_capped():
    assert len(normalise_name("x" * 500)) == 64


def test_excited():
    assert greet("Ada", excited=True) == "Hello, Ada!"
