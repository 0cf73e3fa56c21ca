"""A Kubernetes pod through containerd's CRI plugin, with pyrunc as the RuntimeClass handler.

kubelet is not available here, so the test speaks the CRI v1 gRPC API to containerd itself,
in the order kubelet does for a pod with one container and an exec probe: RunPodSandbox with
runtime_handler "pyrunc", CreateContainer, StartContainer, ExecSync, ContainerStatus,
StopContainer, RemoveContainer, StopPodSandbox, RemovePodSandbox. containerd's config names
the handler `pyrunc` (shim io.containerd.runc.v2, BinaryName = pyrunc, Root under the test's
temp dir), so the sandbox ("pause") container and the app container are both pyrunc
containers, visible with `pyrunc --root <Root>/k8s.io list`. The sandbox image is the busybox
image the test imports, whose default command sleeps. No CNI: the pod uses the host network.
The messages come from tests/callers/cri_v1.proto, compiled at test time.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from containerd_daemon import Containerd
from busybox_image import build_oci_archive
from pyrunc_testing import CGROUP_PREFIX, is_root, pyrunc_command

HERE = Path(__file__).resolve().parent
IMAGE = "localhost/bb:latest"
CRI_NAMESPACE = "k8s.io"   # containerd namespace the CRI plugin keeps its images and containers in

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not is_root(), reason="starts containerd and containers: needs root"),
    pytest.mark.skipif(importlib.util.find_spec("grpc_tools") is None
                       or importlib.util.find_spec("grpc") is None,
                       reason="grpcio and grpcio-tools are not installed (the test extra)"),
    pytest.mark.skipif(subprocess.run(["sh", "-c", "command -v containerd"],
                                      capture_output=True).returncode != 0,
                       reason="containerd is not installed (apt-get install containerd)"),
]


def compile_cri(out: Path) -> tuple[ModuleType, ModuleType]:
    """protoc cri_v1.proto into ``out``; return the message and the service modules."""
    from grpc_tools import protoc

    include = Path(protoc.__file__).parent / "_proto"
    rc = protoc.main(["protoc", f"-I{HERE}", f"-I{include}", f"--python_out={out}",
                      f"--grpc_python_out={out}", str(HERE / "cri_v1.proto")])
    assert rc == 0, f"protoc failed on cri_v1.proto (exit {rc})"
    sys.path.insert(0, str(out))
    try:
        return importlib.import_module("cri_v1_pb2"), importlib.import_module("cri_v1_pb2_grpc")
    finally:
        sys.path.remove(str(out))


class Cri:
    """A RuntimeService client plus what it created, so teardown can remove it all."""

    def __init__(self, daemon: Containerd, pb: ModuleType, pb_grpc: ModuleType) -> None:
        import grpc

        self.daemon = daemon
        self.pb = pb
        self.channel = grpc.insecure_channel(f"unix://{daemon.socket}")
        self.rs = pb_grpc.RuntimeServiceStub(self.channel)
        self.sandboxes: list[str] = []
        self.runc_root = daemon.base / "runc-root" / CRI_NAMESPACE
        self.pyrunc = pyrunc_command()[0]

    def call(self, method: str, **fields: Any) -> Any:
        request = getattr(self.pb, f"{method}Request")(**fields)
        return getattr(self.rs, method)(request, timeout=60)

    def pyrunc_containers(self) -> dict[str, dict[str, Any]]:
        if not self.runc_root.exists():
            return {}
        out = subprocess.run([self.pyrunc, "--root", str(self.runc_root), "list", "--format",
                              "json"], capture_output=True, text=True, check=True).stdout
        return {c["id"]: c for c in json.loads(out or "[]") or []}

    def cleanup(self) -> None:
        """Stop and remove every pod still recorded (RemovePodSandbox removes its containers)."""
        while self.sandboxes:
            sandbox = self.sandboxes.pop()
            for method in ("StopPodSandbox", "RemovePodSandbox"):
                try:
                    self.call(method, pod_sandbox_id=sandbox)
                except Exception:  # noqa: BLE001 - best effort; leftovers are asserted below
                    pass


@pytest.fixture(scope="module")
def cri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cri]:
    base = tmp_path_factory.mktemp("containerd-cri")
    pb, pb_grpc = compile_cri(tmp_path_factory.mktemp("cri-proto"))
    daemon = Containerd(base, cri=True, pyrunc=pyrunc_command()[0], sandbox_image=IMAGE)
    client: Cri | None = None
    left: dict[str, dict[str, Any]] = {}
    try:
        daemon.start()
        archive = build_oci_archive(base, base / "image.tar")
        daemon.ctr("image", "import", "--base-name", "localhost/bb", str(archive),
                   namespace=CRI_NAMESPACE)
        client = Cri(daemon, pb, pb_grpc)
        yield client
    finally:
        if client is not None:
            client.cleanup()
            client.channel.close()
            left = client.pyrunc_containers()
            for cid in left:
                subprocess.run([client.pyrunc, "--root", str(client.runc_root), "delete",
                                "--force", cid], capture_output=True, check=False)
        forced = daemon.stop()
        daemon.remove()
    assert not left, f"pyrunc containers left behind: {sorted(left)}"
    assert not forced, f"containerd left things behind: {forced}"


@pytest.fixture
def cgroup_parent() -> Iterator[str]:
    """The pod's cgroup parent: absolute, under the tests' prefix, removed afterwards."""
    parent = f"{CGROUP_PREFIX}/pod-{uuid.uuid4().hex[:8]}"
    yield parent
    left = []
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        directory = hierarchy / parent.lstrip("/")
        if directory.is_dir():
            for child in sorted(directory.iterdir(), reverse=True):
                if child.is_dir():
                    left.append(str(child))
                    child.rmdir()
            directory.rmdir()
    assert not left, f"pod cgroups left behind: {left}"


@pytest.fixture
def pods(cri: Cri, cgroup_parent: str) -> Iterator[Cri]:
    """The client, with the test's pods stopped and removed before their cgroups are checked."""
    try:
        yield cri
    finally:
        cri.cleanup()


def wait_state(cri: Cri, cid: str, state: int, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        status = cri.call("ContainerStatus", container_id=cid).status
        if status.state == state or time.monotonic() > deadline:
            return status
        time.sleep(0.1)


def test_a_pod_with_a_probe_runs_under_pyrunc(pods: Cri, cgroup_parent: str,
                                              tmp_path: Path) -> None:
    cri = pods
    pb = cri.pb
    assert cri.call("Version").runtime_name == "containerd"
    logs = tmp_path / "pod-logs"
    logs.mkdir()
    # Host network (no CNI here). kubelet sets no hostname for such a pod: the pod shares the
    # host's UTS namespace, and runc (like pyrunc) refuses a hostname without one of its own.
    host_network = pb.NamespaceOption(network=pb.NODE)
    sandbox_config = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name="web", uid=uuid.uuid4().hex, namespace="default"),
        log_directory=str(logs),
        linux=pb.LinuxPodSandboxConfig(
            cgroup_parent=cgroup_parent,
            security_context=pb.LinuxSandboxSecurityContext(namespace_options=host_network)))
    sandbox = cri.call("RunPodSandbox", config=sandbox_config,
                       runtime_handler="pyrunc").pod_sandbox_id
    cri.sandboxes.append(sandbox)
    running = cri.pyrunc_containers()
    assert sandbox in running, (sandbox, running)
    assert running[sandbox]["status"] == "running", running   # the pause container is pyrunc's

    limit = 96 * 1024 * 1024
    container_config = pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name="app"), image=pb.ImageSpec(image=IMAGE),
        command=["sh", "-c", "echo app started; trap 'echo bye; exit 0' TERM; "
                 "while :; do sleep 0.2; done"],
        log_path="app.log",
        linux=pb.LinuxContainerConfig(
            resources=pb.LinuxContainerResources(memory_limit_in_bytes=limit),
            security_context=pb.LinuxContainerSecurityContext(namespace_options=host_network)))
    app = cri.call("CreateContainer", pod_sandbox_id=sandbox, config=container_config,
                   sandbox_config=sandbox_config).container_id
    # containerd's CRI creates the task (pyrunc create, then start) in StartContainer.
    cri.call("StartContainer", container_id=app)
    status = wait_state(cri, app, pb.CONTAINER_RUNNING)
    assert status.state == pb.CONTAINER_RUNNING, status
    app_state = cri.pyrunc_containers()[app]
    assert app_state["status"] == "running"
    app_pid = app_state["pid"]
    assert f":memory:{cgroup_parent}/{app}\n" in Path(f"/proc/{app_pid}/cgroup").read_text()
    memory_dir = Path("/sys/fs/cgroup/memory") / cgroup_parent.lstrip("/") / app
    assert int((memory_dir / "memory.limit_in_bytes").read_text()) == limit

    # A liveness probe as kubelet runs it: ExecSync, output and exit code back.
    probe = cri.call("ExecSync", container_id=app, timeout=10,
                     cmd=["sh", "-c", "echo healthy; echo note >&2; cat /proc/1/comm; exit 3"])
    assert probe.exit_code == 3
    assert probe.stdout.decode().split() == ["healthy", "sleep"]   # pid 1: the pod's sandbox
    assert probe.stderr == b"note\n"

    cri.call("StopContainer", container_id=app, timeout=10)
    status = wait_state(cri, app, pb.CONTAINER_EXITED)
    assert status.state == pb.CONTAINER_EXITED and status.exit_code == 0, status
    log_text = (logs / "app.log").read_text()
    assert " stdout F app started\n" in log_text and " stdout F bye\n" in log_text, log_text
    # Once the task has exited, containerd deletes it (pyrunc delete): state and cgroup go.
    assert app not in cri.pyrunc_containers()
    assert not memory_dir.exists()

    cri.call("RemoveContainer", container_id=app)
    import grpc

    with pytest.raises(grpc.RpcError) as gone:
        cri.call("ContainerStatus", container_id=app)
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    cri.call("StopPodSandbox", pod_sandbox_id=sandbox)
    cri.call("RemovePodSandbox", pod_sandbox_id=sandbox)
    cri.sandboxes.remove(sandbox)
    assert cri.pyrunc_containers() == {}
