"""The repository layout keeps the standard library's `operator` module importable."""

import operator
import pathlib
import re
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


def test_product_package_never_imports_the_lab():
    # The lab (control plane, kubelet stand-in, simulator, demo) is what tests run on, not what a cluster runs.
    root = pathlib.Path(assay.__file__).parent
    offenders = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if re.search(r"^\s*(from|import)\s+assaylab\b", path.read_text(), re.MULTILINE)
    ]
    assert offenders == []


def test_product_wheel_holds_only_the_assay_package():
    import setuptools

    found = setuptools.find_packages(where=str(pathlib.Path(assay.__file__).parents[1]), include=["assay*"])
    assert found and all(name == "assay" or name.startswith("assay.") for name in found)
