"""linux.memoryPolicy (runtime-spec 1.3.0): the container's program runs under the NUMA policy,
set with set_mempolicy(2) by its init; bad policies are refused with one line."""

from __future__ import annotations

import pytest

from pyrunc_testing import needs_root

pytestmark = [needs_root, pytest.mark.integration]


def with_policy(policy: dict) -> object:
    def edit(config: dict) -> None:
        config["linux"]["memoryPolicy"] = policy
    return edit


def test_program_runs_under_the_configured_policy(runtime, bundle):
    b = bundle("grep", "-m1", "busybox", "/proc/self/numa_maps", edit=with_policy(
        {"mode": "MPOL_INTERLEAVE", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]}))
    out = runtime("run", "-b", str(b), "mpol").stdout
    assert " interleave=static:0 " in out, out


def test_without_a_policy_the_default_one_is_kept(runtime, bundle):
    out = runtime("run", "-b", str(bundle("grep", "-m1", "busybox", "/proc/self/numa_maps")),
                  "nompol").stdout
    assert " default " in out, out


@pytest.mark.parametrize("policy, words", [
    ({"mode": "MPOL_BIND"}, "/linux/memoryPolicy/nodes: MPOL_BIND needs at least one node"),
    ({"mode": "MPOL_LOCAL", "nodes": "0"}, "/linux/memoryPolicy/nodes: MPOL_LOCAL takes no nodes"),
    ({"mode": "MPOL_BIND", "nodes": "0-"}, "/linux/memoryPolicy/nodes: '0-' is not a node list"),
    # Node 1000 is not online: the kernel refuses the policy when the init sets it.
    ({"mode": "MPOL_BIND", "nodes": "1000"}, "set_mempolicy mode 0x2 nodes 1000: EINVAL"),
])
def test_bad_policies_fail_with_one_line(runtime, bundle, policy, words):
    result = runtime("run", "-b", str(bundle("true", edit=with_policy(policy))), "bad",
                     check=False)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and words in lines[0], result.stderr
    assert not (runtime.root / "bad").exists()
