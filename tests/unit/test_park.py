"""What the init gives back before it parks: the unloaded validator and the trimmed C heap.

Each check runs in a fresh interpreter: the test process's own heap and modules (this suite
imports the validator at module level elsewhere) would blur what is being measured.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap

from pyrunc_testing import REPO

from pyrunc.process import park


def _python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_dropping_the_validator_frees_its_code_and_validation_still_works() -> None:
    out = _python("""
        import sys, weakref
        from pyrunc.spec.defaults import default_config
        from pyrunc.spec.validate import ConfigValidationError, validate_config
        from pyrunc.process import park

        doc = default_config()
        validate_config(doc)
        module = sys.modules[park.VALIDATOR]
        functions = [weakref.ref(v) for v in vars(module).values() if callable(v)
                     and getattr(v, "__module__", None) == park.VALIDATOR
                     and type(v).__name__ == "function"]
        assert functions
        del module
        assert park.drop_config_validator()
        assert park.VALIDATOR not in sys.modules
        import pyrunc.spec
        assert not hasattr(pyrunc.spec, "_compiled_config_schema")
        print("alive", sum(ref() is not None for ref in functions))
        validate_config(doc)                       # imported again
        try:
            validate_config({**doc, "ociVersion": 1})
        except ConfigValidationError as exc:
            print("rejected", exc.pointer)
        print("dropped again", park.drop_config_validator())
    """)
    assert out.split("\n")[:3] == ["alive 0", "rejected /ociVersion", "dropped again True"], out


def test_a_validator_someone_else_holds_is_left_whole() -> None:
    held = importlib.import_module(park.VALIDATOR)
    assert park.drop_config_validator() is False
    assert sys.modules[park.VALIDATOR] is held and callable(held.validate)


def test_trim_gives_the_free_heap_pages_inside_the_heap_back() -> None:
    # 64 MiB in blocks below glibc's mmap threshold lands in the heap; a block allocated
    # after them keeps the heap's top in use, so free() alone returns nothing to the kernel.
    out = _python("""
        from pyrunc.linux import heap

        def anon_kib():
            with open("/proc/self/status") as f:
                return next(int(l.split()[1]) for l in f if l.startswith("RssAnon"))

        blocks = [b"x" * 100_000 for _ in range(640)]
        pin = b"y" * 100_000
        del blocks
        before = anon_kib()
        released = heap.trim()
        print(released, before - anon_kib())
    """)
    released, freed_kib = out.split()
    assert released == "True"
    assert int(freed_kib) > 32 * 1024, out
