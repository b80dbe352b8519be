"""The repository layout keeps the standard library's `operator` module importable."""

import operator
import sys

import assay


def test_import_operator_is_the_standard_library():
    assert operator.__name__ == "operator"
    assert hasattr(operator, "itemgetter")
    origin = getattr(operator, "__file__", "") or ""
    assert "operator" not in sys.modules["assay"].__name__
    assert not origin.replace("\\", "/").endswith("operator/__init__.py")


def test_assay_package_lives_under_operator_folder():
    assert assay.__file__.replace("\\", "/").endswith("operator/assay/__init__.py")
