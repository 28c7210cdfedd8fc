"""colorbench.core.values: the typed reads of JSON and record values convert as float()/int() do, and refuse
values of other types instead of passing them on."""

import math

import numpy as np
import pytest
import torch

from colorbench.core.values import integer, number, section


def test_number_converts_what_float_converts() -> None:
    assert number(2) == 2.0 and number(1.5) == 1.5 and number("0.25") == 0.25
    assert math.isnan(number("nan")) and number("inf") == math.inf
    assert number(np.float32(0.5)) == 0.5 and number(torch.tensor(3.0)) == 3.0


@pytest.mark.parametrize("value", [None, [1.0], {"a": 1}])
def test_number_refuses_other_types(value: object) -> None:
    with pytest.raises(TypeError, match="expected a number"):
        number(value)


def test_integer_converts_what_int_converts() -> None:
    assert integer("3") == 3 and integer(3.7) == 3 and integer(np.int64(4)) == 4
    with pytest.raises(TypeError, match="expected an integer"):
        integer(None)
    with pytest.raises(ValueError):
        integer("3.5")


def test_section_is_get_or_empty_and_refuses_non_objects() -> None:
    record = {"training": {"epochs": 2}, "none": None, "empty": {}, "list": [1]}
    assert section(record, "training") == {"epochs": 2}
    assert section(record, "none") == {} and section(record, "empty") == {} and section(record, "missing") == {}
    with pytest.raises(TypeError, match="not an object"):
        section(record, "list")
