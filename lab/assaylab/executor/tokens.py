"""Service-account tokens: a token for the pod's ServiceAccount (TokenRequest, bound to the pod) in a
kubeconfig handed to the process in `KUBECONFIG`, so the process has exactly the RBAC rights of that
ServiceAccount, only when a kubelet would mount a token."""

from __future__ import annotations

import base64
import pathlib
from collections.abc import Mapping
from typing import Any

import yaml
from kubernetes import client

from assaylab.executor import errors, pod_run

TOKEN_EXPIRATION_SECONDS = 24 * 3600  # a kubelet refreshes the token file; a kubeconfig is read once


def wants_token(pod: Mapping[str, Any], container: Mapping[str, Any]) -> bool:
    """Whether the container mounts a projected serviceAccountToken volume (the ServiceAccount admission
    plugin adds that volume unless automounting is switched off)."""
    volumes = pod["spec"].get("volumes") or []
    mounted = {m["name"] for m in container.get("volumeMounts") or []}
    return any(
        volume["name"] in mounted
        and any("serviceAccountToken" in s for s in (volume.get("projected") or {}).get("sources", []))
        for volume in volumes
    )


def credentials(
    core: client.CoreV1Api, configuration: client.Configuration, run: pod_run.PodRun
) -> pathlib.Path | None:
    """A kubeconfig carrying a token of the pod's ServiceAccount, when the pod would get a token mounted;
    minted once per pod. A missing ServiceAccount is what a kubelet reports while it cannot mount the token."""
    if not wants_token(run.pod, run.container):
        return None
    if run.kubeconfig is not None:
        return run.kubeconfig
    account = run.pod["spec"].get("serviceAccountName") or "default"
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(
            audiences=[],  # the API server's own audience
            expiration_seconds=TOKEN_EXPIRATION_SECONDS,
            # Bound to the pod: the token stops working when the pod is deleted, as in a cluster.
            bound_object_ref=client.V1BoundObjectReference(api_version="v1", kind="Pod", name=run.name, uid=run.uid),
        )
    )
    try:
        response = core.create_namespaced_service_account_token(account, run.namespace, request, _preload_content=False)
    except client.ApiException as exc:
        if exc.status == 404:
            raise errors.ContainerConfigError(
                f'MountVolume.SetUp failed: failed to fetch token: serviceaccounts "{account}" not found',
                reason="ContainerCreating",
            ) from None
        raise
    token = pod_run.response_json(response)["status"]["token"]
    run.kubeconfig = run.directory / "kubeconfig"
    run.kubeconfig.write_text(yaml.safe_dump(kubeconfig_for(configuration, run.namespace, account, token)))
    run.kubeconfig.chmod(0o600)
    return run.kubeconfig


def kubeconfig_for(configuration: client.Configuration, namespace: str, account: str, token: str) -> dict[str, Any]:
    """A kubeconfig for `configuration`'s API server that authenticates as the ServiceAccount's token."""
    cluster: dict[str, Any] = {"server": configuration.host}
    ca_file = configuration.ssl_ca_cert
    if ca_file:
        cluster["certificate-authority-data"] = base64.b64encode(pathlib.Path(ca_file).read_bytes()).decode()
    if not configuration.verify_ssl:
        cluster["insecure-skip-tls-verify"] = True
    user = f"system:serviceaccount:{namespace}:{account}"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "cluster", "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        # The pod's namespace is the default one, as in-cluster config reads it from the token mount.
        "contexts": [{"name": "pod", "context": {"cluster": "cluster", "user": user, "namespace": namespace}}],
        "current-context": "pod",
    }
