from __future__ import annotations

import inspect

import pytest
from sqlalchemy.exc import DBAPIError, OperationalError

import datakeep.errors as errors
from datakeep.errors import Busy, DatakeepError, IndexFailure, NotFound
from datakeep.index.engine import translated

BUILTINS = (FileNotFoundError, KeyError, FileExistsError, ValueError, OSError, TimeoutError)


def all_errors() -> list[type[DatakeepError]]:
    return [
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, DatakeepError)
    ]


def test_every_error_is_in_the_tree_and_has_a_builtin_parent() -> None:
    doc = errors.__doc__ or ""
    for cls in all_errors():
        assert cls.__name__ in doc, f"{cls.__name__} missing from the drawn tree"
        assert cls.__name__ in errors.__all__
        if cls is not DatakeepError:
            assert issubclass(cls, BUILTINS), cls


def test_not_found_reads_as_both_builtins_and_prints_plainly() -> None:
    exc = NotFound("no content x")
    assert isinstance(exc, FileNotFoundError) and isinstance(exc, KeyError)
    assert str(exc) == "no content x"  # not KeyError's quoted repr


class FakeDriverError(Exception):
    pass


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("database is locked", Busy),
        ("database table is locked", Busy),
        ("canceling statement due to lock timeout", Busy),
        ("deadlock detected", Busy),
        ("disk I/O error", IndexFailure),
        ("relation does not exist", IndexFailure),
    ],
)
def test_driver_errors_map_to_datakeep_errors(message: str, expected: type) -> None:
    for cls in (OperationalError, DBAPIError):
        with pytest.raises(expected) as caught, translated("testing"):
            raise cls("SELECT 1", {}, FakeDriverError(message))
        assert type(caught.value) is expected
        assert message in str(caught.value) or expected is Busy
