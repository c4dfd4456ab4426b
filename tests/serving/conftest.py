"""Fixtures of the serving tests: SavedModel exports, each a 233 MB folder, made once for the
package and removed after its last test."""

import pytest


@pytest.fixture(scope="package")
def bvlc_export(tmp_path_factory):
    """bvlc at 227, the 1000 ImageNet classes, exported through the CLI."""
    from tests import exports

    return exports.make(tmp_path_factory.mktemp("bvlc_export"), "bvlc", classes=1000)


@pytest.fixture(scope="package")
def chm_export(tmp_path_factory):
    """chm2012 at 224 with 10 named classes and a per-pixel mean image."""
    from tests import exports

    return exports.make(tmp_path_factory.mktemp("chm_export"), "chm2012", classes=10)
