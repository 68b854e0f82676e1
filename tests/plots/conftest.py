"""What the plots tests share: plots/ on the import path, and fixture runs
(tests/matrix/make_fixture_run.py), written once for each test module."""
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "plots"))


def write_fixture_run(tmp_path_factory, *flags):
    """A fixture run directory; flags are make_fixture_run.py's (--trace)."""
    out = str(tmp_path_factory.mktemp("fixture") / "run")
    subprocess.run([sys.executable, os.path.join(HERE, "..", "matrix", "make_fixture_run.py"), out, *flags],
                   check=True)
    return out


@pytest.fixture(scope="module")
def fixture_run(tmp_path_factory):
    """Workloads only: several backends, two thread counts, failed cells."""
    return write_fixture_run(tmp_path_factory)


@pytest.fixture(scope="module")
def fixture_run_with_trace(tmp_path_factory):
    """The same with a trace source (kernel slack, call sites)."""
    return write_fixture_run(tmp_path_factory, "--trace")
