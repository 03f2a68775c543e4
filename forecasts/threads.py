"""Run small linear algebra single-threaded.

statsmodels' state-space fits do thousands of tiny LAPACK calls; with OpenBLAS' thread pool on a
busy machine each call pays for waking threads, which made fits up to 10x slower in wall time
here. `single_threaded_blas()` sets every loaded OpenBLAS to one thread for the duration (the
same thing threadpoolctl does, without the extra dependency) and restores the previous count.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
from collections.abc import Iterator

log = logging.getLogger(__name__)

_SET = (
    "scipy_openblas_set_num_threads64_",
    "scipy_openblas_set_num_threads",
    "openblas_set_num_threads64_",
    "openblas_set_num_threads",
)
_GET = (
    "scipy_openblas_get_num_threads64_",
    "scipy_openblas_get_num_threads",
    "openblas_get_num_threads64_",
    "openblas_get_num_threads",
)


@functools.cache
def _openblas_libs() -> list[tuple]:
    paths = set()
    try:
        with open("/proc/self/maps") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) >= 6 and "openblas" in parts[-1].lower():
                    paths.add(parts[-1])
    except OSError:  # not Linux: leave threading alone
        return []
    out = []
    for p in sorted(paths):
        try:
            lib = ctypes.CDLL(p)
        except OSError:
            continue
        setter = next((getattr(lib, n) for n in _SET if hasattr(lib, n)), None)
        getter = next((getattr(lib, n) for n in _GET if hasattr(lib, n)), None)
        if setter is not None and getter is not None:
            out.append((setter, getter))
    return out


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    import numpy  # noqa: F401  (make sure numpy's/scipy's OpenBLAS is loaded)
    import scipy.linalg  # noqa: F401

    libs = _openblas_libs()
    before = []
    for setter, getter in libs:
        before.append(int(getter()))
        setter(1)
    try:
        yield
    finally:
        for (setter, _), n in zip(libs, before, strict=True):
            setter(n)
