"""The local executor resolves a container's environment and command as the kubelet does."""

from __future__ import annotations

import sys
from collections.abc import Mapping

import pytest

from assaylab import executor


class Objects:
    """Secrets and ConfigMaps of one namespace, as decoded text (what the executor reads from the API)."""

    def __init__(
        self, *, secrets: Mapping[str, Mapping[str, str]] = {}, config_maps: Mapping[str, Mapping[str, str]] = {}
    ) -> None:
        self.secrets = dict(secrets)
        self.config_maps = dict(config_maps)

    def secret(self, namespace: str, name: str) -> Mapping[str, str] | None:
        return self.secrets.get(name)

    def config_map(self, namespace: str, name: str) -> Mapping[str, str] | None:
        return self.config_maps.get(name)


def pod(container: dict, **spec: object) -> dict:
    return {
        "metadata": {
            "name": "run-0-abcde",
            "namespace": "team-a",
            "uid": "1234-5678",
            "labels": {"batch.kubernetes.io/job-name": "run"},
            "annotations": {"batch.kubernetes.io/job-completion-index": "3"},
        },
        "spec": {"serviceAccountName": "evaluator", "nodeName": "assay-local", "containers": [container], **spec},
        "status": {"hostIP": "127.0.0.1", "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}]},
    }


def resolve(container: dict, objects: Objects | None = None, **kwargs: object) -> dict[str, str]:
    return executor.resolve_environment(pod(container), container, objects or Objects(), **kwargs)  # type: ignore[arg-type]


def test_plain_values_expand_earlier_variables_and_keep_unknown_references():
    env = resolve(
        {
            "name": "main",
            "env": [
                {"name": "BASE", "value": "/data"},
                {"name": "PATH_IN", "value": "$(BASE)/in"},
                {"name": "UNKNOWN", "value": "$(NOPE)/x"},
                {"name": "ESCAPED", "value": "$$(BASE) costs $5"},
                {"name": "LATER", "value": "$(AFTER)"},
                {"name": "AFTER", "value": "a"},
                {"name": "EMPTY", "value": ""},
            ],
        }
    )
    assert env == {
        "BASE": "/data",
        "PATH_IN": "/data/in",
        "UNKNOWN": "$(NOPE)/x",
        "ESCAPED": "$(BASE) costs $5",
        "LATER": "$(AFTER)",
        "AFTER": "a",
        "EMPTY": "",
    }


def test_expansion_keeps_an_unclosed_reference_as_written():
    assert executor.expand("$(OPEN", {"OPEN": "x"}) == "$(OPEN"
    assert executor.expand("end$", {}) == "end$"


def test_secret_and_config_map_keys_become_values():
    objects = Objects(secrets={"keys": {"api-key": "sk-1"}}, config_maps={"settings": {"level": "debug"}})
    env = resolve(
        {
            "name": "main",
            "env": [
                {"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "keys", "key": "api-key"}}},
                {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "level"}}},
            ],
        },
        objects,
    )
    assert env == {"API_KEY": "sk-1", "LEVEL": "debug"}


def test_missing_required_secret_fails_with_the_kubelet_message():
    container = {"name": "main", "env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "keys", "key": "k"}}}]}
    with pytest.raises(executor.ContainerConfigError) as raised:
        resolve(container)
    assert str(raised.value) == 'secret "keys" not found'
    assert raised.value.reason == "CreateContainerConfigError"


def test_missing_required_key_names_the_key_and_the_object():
    container = {"name": "main", "env": [{"name": "K", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}}]}
    with pytest.raises(executor.ContainerConfigError) as raised:
        resolve(container, Objects(config_maps={"cm": {"other": "1"}}))
    assert str(raised.value) == "couldn't find key k in ConfigMap team-a/cm"
    secret_container = {
        "name": "main",
        "env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
    }
    with pytest.raises(executor.ContainerConfigError) as raised:
        resolve(secret_container, Objects(secrets={"s": {}}))
    assert str(raised.value) == "couldn't find key k in Secret team-a/s"


def test_optional_references_are_skipped_when_missing():
    env = resolve(
        {
            "name": "main",
            "env": [
                {"name": "A", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k", "optional": True}}},
                {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s", "key": "absent", "optional": True}}},
                {"name": "C", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k", "optional": True}}},
            ],
            "envFrom": [{"secretRef": {"name": "absent", "optional": True}}],
        },
        Objects(secrets={"s": {"k": "v"}}),
    )
    assert env == {}


def test_field_references_read_the_pod():
    fields = {
        "NAME": "metadata.name",
        "NS": "metadata.namespace",
        "UID": "metadata.uid",
        "JOB": "metadata.labels['batch.kubernetes.io/job-name']",
        "INDEX": "metadata.annotations['batch.kubernetes.io/job-completion-index']",
        "MISSING_LABEL": "metadata.labels['nope']",
        "SA": "spec.serviceAccountName",
        "NODE": "spec.nodeName",
        "IP": "status.podIP",
        "IPS": "status.podIPs",
    }
    container = {
        "name": "main",
        "env": [{"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}} for name, path in fields.items()],
    }
    assert resolve(container) == {
        "NAME": "run-0-abcde",
        "NS": "team-a",
        "UID": "1234-5678",
        "JOB": "run",
        "INDEX": "3",
        "MISSING_LABEL": "",
        "SA": "evaluator",
        "NODE": "assay-local",
        "IP": "127.0.0.1",
        "IPS": "127.0.0.1",
    }


def test_unsupported_field_path_is_a_config_error():
    container = {"name": "main", "env": [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.nope"}}}]}
    with pytest.raises(executor.ContainerConfigError, match=r"unsupported fieldPath: spec\.nope"):
        resolve(container)


def test_env_from_applies_prefix_in_order_and_env_entries_override_it():
    objects = Objects(
        secrets={"creds": {"TOKEN": "t", "bad=name": "skipped"}},
        config_maps={"one": {"MODE": "one", "SHARED": "one"}, "two": {"SHARED": "two"}},
    )
    env = resolve(
        {
            "name": "main",
            "envFrom": [
                {"configMapRef": {"name": "one"}},
                {"configMapRef": {"name": "two"}},
                {"secretRef": {"name": "creds"}, "prefix": "APP_"},
            ],
            "env": [{"name": "MODE", "value": "override-$(SHARED)"}],
        },
        objects,
    )
    assert env == {"MODE": "override-two", "SHARED": "two", "APP_TOKEN": "t"}


def test_env_from_missing_required_config_map_is_a_config_error():
    with pytest.raises(executor.ContainerConfigError) as raised:
        resolve({"name": "main", "envFrom": [{"configMapRef": {"name": "settings"}}]})
    assert str(raised.value) == 'configmap "settings" not found'


def test_resource_field_references_divide_and_round_up():
    container = {
        "name": "main",
        "resources": {"limits": {"cpu": "1500m", "memory": "1Gi"}, "requests": {"cpu": "250m"}},
        "env": [
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {"name": "CPU_M", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}}},
            {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
            {"name": "NO_REQ", "valueFrom": {"resourceFieldRef": {"resource": "requests.memory"}}},
            {"name": "NODE_EPH", "valueFrom": {"resourceFieldRef": {"resource": "limits.ephemeral-storage"}}},
        ],
    }
    env = resolve(container, allocatable={"cpu": "2", "memory": "8Gi", "ephemeral-storage": "1e9"})
    assert env == {"CPU": "2", "CPU_M": "250", "MEM_MI": "1024", "NO_REQ": "0", "NODE_EPH": "1000000000"}


def test_interpreter_of_the_image_maps_to_this_python():
    mapping = executor.DEFAULT_INTERPRETER_MAP
    assert executor.map_interpreter(["python", "-m", "assay.evaluator"], mapping) == [
        sys.executable,
        "-m",
        "assay.evaluator",
    ]
    assert executor.map_interpreter(["/usr/local/bin/python", "x.py"], mapping)[0] == sys.executable
    assert executor.map_interpreter(["python3"], mapping) == [sys.executable]
    assert executor.map_interpreter(["sh", "-c", "true"], mapping) == ["sh", "-c", "true"]


def test_interpreter_mapping_is_configurable():
    assert executor.map_interpreter(["node", "app.js"], {"node": "/opt/node/bin/node"}) == [
        "/opt/node/bin/node",
        "app.js",
    ]


def test_command_and_args_are_expanded_with_the_environment():
    container = {
        "name": "main",
        "image": "assay:dev",
        "command": ["python", "-m", "$(MODULE)"],
        "args": ["--shard=$(I)"],
    }
    argv = executor.container_command(
        container, {"MODULE": "assay.evaluator", "I": "2"}, interpreter_map=executor.DEFAULT_INTERPRETER_MAP
    )
    assert argv == [sys.executable, "-m", "assay.evaluator", "--shard=2"]


def test_container_without_command_cannot_run_locally():
    with pytest.raises(executor.ContainerConfigError, match="has no command") as raised:
        executor.container_command({"name": "main", "image": "x", "args": ["a"]}, {}, interpreter_map={})
    assert raised.value.reason == "CreateContainerError"


def test_death_by_signal_is_reported_as_128_plus_the_signal():
    assert executor.exit_code(-9) == 137
    assert executor.exit_code(-15) == 143
    assert executor.exit_code(3) == 3


@pytest.mark.parametrize(
    ("text", "value"),
    [("500m", 0.5), ("2", 2), ("1Ki", 1024), ("1.5G", 1.5e9), ("1e3", 1000), ("100u", 1e-4)],
)
def test_quantities_parse_exactly(text, value):
    assert float(executor.parse_quantity(text)) == pytest.approx(value)


def test_a_bad_quantity_says_which():
    with pytest.raises(executor.ContainerConfigError, match="invalid resource quantity '1XB'"):
        executor.parse_quantity("1XB")
