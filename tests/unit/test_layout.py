"""The repository layout keeps the standard library's `operator` module importable."""

import operator

import assay


def test_import_operator_is_the_standard_library():
    assert operator.__name__ == "operator"
    assert hasattr(operator, "itemgetter")
    assert (
        operator.__spec__ is not None and operator.__spec__.origin in {"built-in", "frozen"}
    ) or "site-packages" not in (operator.__file__ or "")
    assert not (getattr(operator, "__file__", None) or "").endswith("operator/__init__.py")


def test_assay_package_lives_under_operator_folder():
    assert assay.__file__.replace("\\", "/").endswith("operator/assay/__init__.py")
