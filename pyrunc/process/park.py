"""What a container's init gives back before it parks on the exec fifo.

A created container's init waits between `pyrunc create` and `pyrunc start`, for as long as the
caller likes, and there may be hundreds of them. It is a fork of a fork of the runtime, so it
starts with a copy of every page the runtime had dirtied: each module imported for `create`
(their code objects are most of it), the parsed config, and whatever free space the allocators
kept. The init itself adds almost nothing (tens of KiB) on top of what it inherits.

Two steps are worth their cost:

* `drop_config_validator`, in the intermediate (a fork of the runtime) before it imports the
  modules the init needs: the compiled config.json validator is the largest module `create`
  imports (about 0.2 MiB once loaded) and has run exactly once, in the runtime's
  `load_bundle`. Freed here, its memory is reused by the imports that follow instead of
  being carried into the init.
* `before_waiting`, in the init once the runtime has its READY: glibc's free pages inside the
  C heap go back to the kernel (`heap.trim`). How many there are varies from run to run
  (from a few KiB to a few hundred); after the trim the waiting init's size no longer does.

What measurably does not help, and is therefore not done: `gc.collect()` or dropping the
modules the init no longer needs once the container is built. Python's small-object allocator
returns memory to the kernel only in whole 1 MiB arenas, and the objects freed that late lie
scattered among live ones, so no arena empties and RssAnon stays where it was (while a full
collection costs milliseconds and dirties every tracked object's page).
"""

from __future__ import annotations

import sys

from pyrunc import trace
from pyrunc.linux import heap

VALIDATOR = "pyrunc.spec._compiled_config_schema"

# sys.modules, the package's attribute, the local name and getrefcount's own argument.
_REFS_OF_AN_UNSHARED_MODULE = 4


def drop_config_validator() -> bool:
    """Unload the compiled config validator, if it is loaded and nothing else holds it.

    Its namespace is cleared so that reference counting frees its functions and code at once
    (a module's functions and its globals form cycles that only a full gc pass would break).
    A later `validate_config` imports it again. Code that needs the module must import the
    module where it uses it, as `validate_config` does, not keep names taken from it.
    Returns whether it was dropped.
    """
    module = sys.modules.get(VALIDATOR)
    if module is None or sys.getrefcount(module) > _REFS_OF_AN_UNSHARED_MODULE:
        return False
    del sys.modules[VALIDATOR]
    package_name, _, leaf = VALIDATOR.rpartition(".")
    package = sys.modules.get(package_name)
    if package is not None and getattr(package, leaf, None) is module:
        delattr(package, leaf)
    module.__dict__.clear()
    if trace.on:
        trace.emit("unload module", path=VALIDATOR)
    return True


def before_waiting() -> None:
    """In the init, after READY: return the C heap's free pages before the wait for start."""
    released = heap.trim()
    if trace.on:
        trace.emit("malloc_trim", value=str(int(released)))   # its return value
