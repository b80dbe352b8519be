"""A real Kubernetes control plane on loopback for tests and the demo: etcd, kube-apiserver and
kube-controller-manager, built by hack/testenv.sh from the Go module proxy.

    python -m assaylab.controlplane up [--dir DIR]     run until Ctrl-C, print the kubeconfig path

It authenticates with a static bearer token (the same path a ServiceAccount token takes through kopf and
the kubernetes client) and authorizes with RBAC. There is no kubelet: Pods stay Pending unless
assaylab.executor runs them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pathlib
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence

import httpx
import yaml

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
TESTENV_SCRIPT = REPO_ROOT / "hack" / "testenv.sh"


class ControlPlaneError(RuntimeError):
    """The control plane could not be built or started; the message says which part and where its log is."""


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_binaries(*, build: bool = True) -> pathlib.Path:
    """The directory holding etcd, kube-apiserver, kube-controller-manager, kubectl and helm.

    ASSAY_TESTBIN overrides; otherwise hack/testenv.sh builds them (a no-op when cached).
    """
    override = os.environ.get("ASSAY_TESTBIN")
    if override:
        return pathlib.Path(override)
    args = ["bash", str(TESTENV_SCRIPT)] + ([] if build else ["--print"])
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ControlPlaneError(f"hack/testenv.sh failed:\n{result.stderr[-4000:]}")
    return pathlib.Path(result.stdout.strip().splitlines()[-1])


class ControlPlane:
    """etcd + kube-apiserver (+ kube-controller-manager) on free loopback ports.

    start() returns once /readyz answers ok; stop() ends every process and removes the work directory
    unless it was given by the caller.
    """

    def __init__(
        self,
        bin_dir: pathlib.Path,
        *,
        workdir: pathlib.Path | None = None,
        controller_manager: bool = True,
    ) -> None:
        self.bin_dir = bin_dir
        self._own_workdir = workdir is None
        self.workdir = workdir or pathlib.Path(tempfile.mkdtemp(prefix="assay-cp-"))
        self.with_controller_manager = controller_manager
        self.token = secrets.token_hex(16)
        self.port = 0
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def kubeconfig(self) -> pathlib.Path:
        return self.workdir / "kubeconfig"

    @property
    def ca_file(self) -> pathlib.Path:
        return self.workdir / "certs" / "apiserver.crt"

    def log_path(self, name: str) -> pathlib.Path:
        return self.workdir / f"{name}.log"

    def _spawn(self, name: str, args: Sequence[str]) -> None:
        log = open(self.log_path(name), "wb")  # noqa: SIM115 - the process owns it until stop()
        self._procs[name] = subprocess.Popen(
            [str(self.bin_dir / name), *args], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def _check_alive(self, name: str) -> None:
        proc = self._procs[name]
        if proc.poll() is not None:
            tail = self.log_path(name).read_text(errors="replace")[-3000:]
            raise ControlPlaneError(f"{name} exited with {proc.returncode}; log {self.log_path(name)}:\n{tail}")

    def _keys(self) -> tuple[pathlib.Path, pathlib.Path]:
        key = self.workdir / "sa.key"
        pub = self.workdir / "sa.pub"
        subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
        subprocess.run(
            ["openssl", "rsa", "-in", str(key), "-pubout", "-out", str(pub)], check=True, capture_output=True
        )
        return key, pub

    def start(self, *, timeout: float = 120.0) -> ControlPlane:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "certs").mkdir(exist_ok=True)
        etcd_client, etcd_peer = free_port(), free_port()
        self.port = free_port()
        self._spawn(
            "etcd",
            [
                "--name=assay-test",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_client}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_client}",
                f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-cluster=assay-test=http://127.0.0.1:{etcd_peer}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )
        sa_key, sa_pub = self._keys()
        tokens = self.workdir / "tokens.csv"
        tokens.write_text(f'{self.token},admin,admin-uid,"system:masters"\n')
        self._spawn(
            "kube-apiserver",
            [
                f"--etcd-servers=http://127.0.0.1:{etcd_client}",
                f"--etcd-prefix=/assay-{self.token[:8]}/registry",
                f"--secure-port={self.port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--cert-dir={self.workdir / 'certs'}",
                f"--token-auth-file={tokens}",
                "--authorization-mode=RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={sa_pub}",
                f"--service-account-signing-key-file={sa_key}",
                "--service-cluster-ip-range=10.96.0.0/16",
                "--allow-privileged=true",
                "--enable-priority-and-fairness=false",
                "--profiling=false",
                "--v=0",
            ],
        )
        deadline = time.monotonic() + timeout
        self._wait_ready(deadline)
        self._write_kubeconfig()
        if self.with_controller_manager:
            self._spawn(
                "kube-controller-manager",
                [
                    f"--kubeconfig={self.kubeconfig}",
                    f"--authentication-kubeconfig={self.kubeconfig}",
                    f"--authorization-kubeconfig={self.kubeconfig}",
                    "--controllers=job,garbagecollector,namespace,serviceaccount,serviceaccount-token,"
                    "replicaset,deployment,ttl-after-finished",
                    f"--service-account-private-key-file={sa_key}",
                    f"--root-ca-file={self.ca_file}",
                    "--use-service-account-credentials=false",
                    "--leader-elect=false",
                    "--secure-port=0",
                    "--concurrent-gc-syncs=5",
                    "--v=0",
                ],
            )
            time.sleep(0.5)
            self._check_alive("kube-controller-manager")
        return self

    def _wait_ready(self, deadline: float) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        last = ""
        while time.monotonic() < deadline:
            self._check_alive("etcd")
            self._check_alive("kube-apiserver")
            try:
                response = httpx.get(f"{self.url}/readyz", headers=headers, verify=False, timeout=2)
                if response.status_code == 200:
                    return
                last = response.text[-500:]
            except httpx.HTTPError as exc:
                last = str(exc)
            time.sleep(0.3)
        raise ControlPlaneError(f"kube-apiserver not ready: {last}; log {self.log_path('kube-apiserver')}")

    def _write_kubeconfig(self) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "assay-test", "cluster": {"server": self.url, "certificate-authority": str(self.ca_file)}}
            ],
            "users": [{"name": "admin", "user": {"token": self.token}}],
            "contexts": [{"name": "assay-test", "context": {"cluster": "assay-test", "user": "admin"}}],
            "current-context": "assay-test",
        }
        self.kubeconfig.write_text(yaml.safe_dump(config))
        self.kubeconfig.chmod(0o600)

    def stop(self) -> None:
        for name in reversed(list(self._procs)):
            proc = self._procs[name]
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self._procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        self._procs.clear()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def running(*, controller_manager: bool = True) -> Iterator[ControlPlane]:
    plane = ControlPlane(test_binaries(), controller_manager=controller_manager)
    try:
        yield plane.start()
    finally:
        plane.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m assaylab.controlplane")
    parser.add_argument("command", choices=["up", "build"])
    parser.add_argument("--dir", type=pathlib.Path, default=None, help="work directory (kept afterwards)")
    args = parser.parse_args(argv)
    bin_dir = test_binaries()
    if args.command == "build":
        print(bin_dir)
        return 0
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    plane = ControlPlane(bin_dir, workdir=args.dir)
    plane.start()
    print(f"kubeconfig: {plane.kubeconfig}", flush=True)
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        plane.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
