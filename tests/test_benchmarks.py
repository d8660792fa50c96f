"""Every airspeed velocity benchmark in ``asv_bench/benchmarks`` runs once, at tiny sizes.

The benchmark modules are imported with ``SPARSEMAX_NB_ASV_TINY=1`` (which shrinks their
parameter sizes); then, for each benchmark class and each combination of its parameters, the
test runs ``setup``, the benchmark body once, and ``teardown``, the way asv would. A setup that
raises ``NotImplementedError`` (asv's way to skip, e.g. a GPU benchmark with no GPU) skips that
combination. No timing is asserted.
"""

import glob
import importlib
import inspect
import itertools
import os
import sys

import pytest

ASV_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "asv_bench")
BENCH_DIR = os.path.join(ASV_DIR, "benchmarks")
PREFIXES = ("time_", "timeraw_", "mem_", "peakmem_", "track_")


def _load_modules():
    """``{name: module or the exception its import raised}`` with the tiny sizes."""
    mods = {}
    saved = os.environ.get("SPARSEMAX_NB_ASV_TINY")
    os.environ["SPARSEMAX_NB_ASV_TINY"] = "1"
    sys.path.insert(0, ASV_DIR)
    try:
        for path in sorted(glob.glob(os.path.join(BENCH_DIR, "*.py"))):
            name = os.path.splitext(os.path.basename(path))[0]
            if name == "__init__":
                continue
            try:
                mods[name] = importlib.import_module(f"benchmarks.{name}")
            except Exception as e:  # reported by the test of that module, not at collection
                mods[name] = e
    finally:
        sys.path.remove(ASV_DIR)
        if saved is None:
            os.environ.pop("SPARSEMAX_NB_ASV_TINY", None)
        else:
            os.environ["SPARSEMAX_NB_ASV_TINY"] = saved
    return mods


MODULES = _load_modules()


def _benchmarks():
    """``(module name, class or None, attribute name)`` for every benchmark found."""
    out = []
    for mname, mod in MODULES.items():
        if isinstance(mod, Exception):
            out.append((mname, None, None))
            continue
        for cname, obj in vars(mod).items():
            if cname.startswith(PREFIXES) and callable(obj):
                out.append((mname, None, cname))
            elif inspect.isclass(obj) and obj.__module__ == mod.__name__:
                for attr in sorted(vars(obj)):
                    if attr.startswith(PREFIXES) and callable(getattr(obj, attr)):
                        out.append((mname, cname, attr))
    return out


BENCHMARKS = _benchmarks()


def _param_combos(obj):
    params = getattr(obj, "params", None)
    if params is None or params == []:
        return [()]
    if not (isinstance(params, (list, tuple)) and params and isinstance(params[0], (list, tuple))):
        params = [params]  # one parameter given as a plain list
    return list(itertools.product(*params))


def _is_gpu(mname, cname):
    return "gpu" in mname.lower() or "cuda" in mname.lower() or "gpu" in (cname or "").lower()


def test_modules_found():
    assert "bench_cpu" in MODULES
    assert any(c is not None for m, c, a in BENCHMARKS if m == "bench_cpu")


@pytest.mark.parametrize(
    "mname, cname, attr",
    BENCHMARKS,
    ids=[f"{m}.{c or ''}.{a or 'import'}".replace("..", ".") for m, c, a in BENCHMARKS],
)
def test_benchmark_runs_once(mname, cname, attr):
    mod = MODULES[mname]
    if isinstance(mod, Exception):
        if _is_gpu(mname, None) and isinstance(mod, (ImportError, NotImplementedError)):
            pytest.skip(f"{mname} cannot be imported here: {mod}")
        raise mod
    if cname is None:  # a module-level benchmark function
        owner, combos = mod, _param_combos(getattr(mod, attr))
        fn_obj = getattr(mod, attr)
        setup = getattr(fn_obj, "setup", None)
        teardown = getattr(fn_obj, "teardown", None)
        instance = None
    else:
        cls = getattr(mod, cname)
        owner, combos = cls, _param_combos(cls)
    ran = skipped = 0
    for combo in combos:
        if cname is not None:
            instance = owner()
            setup = getattr(instance, "setup", None)
            teardown = getattr(instance, "teardown", None)
            fn = getattr(instance, attr)
            cache_fn = getattr(instance, "setup_cache", None)
            args = ((cache_fn(),) if cache_fn is not None else ()) + tuple(combo)
        else:
            fn, args = fn_obj, tuple(combo)
        try:
            if setup is not None:
                setup(*args)
        except NotImplementedError as e:  # asv's "skip this benchmark"
            skipped += 1
            last_skip = str(e)
            continue
        try:
            result = fn(*args)
            if attr.startswith("track_"):
                assert result is None or isinstance(result, (int, float)), (combo, result)
            if attr.startswith("timeraw_"):
                assert isinstance(result, str), combo
        except Exception as e:
            raise AssertionError(f"{mname}.{cname}.{attr}{combo} failed: {e!r}") from e
        finally:
            if teardown is not None:
                teardown(*args)
        ran += 1
    if ran == 0:
        if skipped:
            pytest.skip(f"every setup raised NotImplementedError ({last_skip})")
        pytest.fail("no parameter combination to run")


def test_cpu_families_cover_spec():
    mod = MODULES["bench_cpu"]
    assert mod.TINY, "the benchmark module was not imported with the tiny sizes"
    assert set(mod.FAMILIES) == {"batch", "huge_row", "tiny_rows", "small_call"}
    assert mod.METHODS == ["sort", "select", "auto"]
    assert mod.DTYPES == ["float32", "float64"]
