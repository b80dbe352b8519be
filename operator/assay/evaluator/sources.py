"""Where the dataset's text comes from: a file on a mounted volume, an HTTP(S) URL, or a ConfigMap key.

A source that does not exist is a permanent error naming it (DatasetSourceError, exit 2); a URL that keeps
failing with 429/5xx/timeouts after the retry policy is a transient one (exit 1).
"""

from __future__ import annotations

import pathlib
from collections.abc import Awaitable, Callable

from assay import egress, httpclient
from assay.api import common, evaluation
from assay.evaluator import errors

DatasetLoader = Callable[[evaluation.Dataset], Awaitable[str]]
ConfigMapReader = Callable[[common.ConfigMapKeyRef], Awaitable[str]]


def read_path(path: str) -> str:
    """The text of a dataset file; DatasetSourceError when it is missing or unreadable."""
    try:
        return pathlib.Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise errors.DatasetSourceError(
            f"dataset.path {path}: no such file; check the volume mounted into the evaluation Job",
            reason="DatasetNotFound",
        ) from None
    except UnicodeDecodeError as exc:
        raise errors.DatasetSourceError(
            f"dataset.path {path}: not UTF-8 text ({exc.reason} at byte {exc.start})", reason="DatasetUnreadable"
        ) from None
    except OSError as exc:
        raise errors.DatasetSourceError(
            f"dataset.path {path}: cannot read: {exc.strerror or exc}", reason="DatasetUnreadable"
        ) from None


async def read_url(url: str, *, policy: httpclient.RetryPolicy, timeout: float) -> str:
    """The body of a dataset URL, fetched with the retry policy. Messages show only the URL's scheme and host:
    a presigned URL's path and query are credentials."""
    shown = f"dataset.url {egress.redact(url)}"
    async with httpclient.make_async_client(timeout=timeout) as client:
        try:
            response = await httpclient.send_with_retry(lambda: client.get(url), policy=policy, what=shown)
        except httpclient.CallFailed as exc:
            if exc.status is not None and exc.status not in httpclient.RETRYABLE_STATUS:
                raise errors.DatasetSourceError(
                    f"{shown}: HTTP {exc.status}; check the URL and that it serves the JSON Lines",
                    reason="DatasetNotFound",
                ) from None
            raise errors.TransientError(str(exc), reason="DatasetFetchFailed") from None
    try:
        return response.content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise errors.DatasetSourceError(
            f"{shown}: not UTF-8 text ({exc.reason} at byte {exc.start})", reason="DatasetUnreadable"
        ) from None


def make_loader(
    *,
    read_config_map: ConfigMapReader | None = None,
    policy: httpclient.RetryPolicy | None = None,
    timeout: float = 60.0,
) -> DatasetLoader:
    """A loader for every source kind; configMapRef needs `read_config_map` (see kube.config_map_reader)."""

    async def load(source: evaluation.Dataset) -> str:
        if source.path is not None:
            return read_path(source.path)
        if source.url is not None:
            return await read_url(source.url, policy=policy or httpclient.RetryPolicy(), timeout=timeout)
        if source.config_map_ref is not None:
            if read_config_map is None:
                raise errors.DatasetSourceError(
                    f"dataset.configMapRef {source.config_map_ref.name}: no Kubernetes access to read it; "
                    "run in the cluster or set KUBECONFIG",
                    reason="DatasetUnreadable",
                )
            return await read_config_map(source.config_map_ref)
        raise errors.DatasetSourceError(
            "dataset: exactly one of configMapRef, url or path must be set", reason="InvalidSpec"
        )

    return load
