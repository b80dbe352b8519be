"""The LiteLLM admin-API adapter against the recorded-contract stand-in (write path) and, when installed, the
real LiteLLM 1.108.7 proxy (read path, and the stand-in's shapes checked against the real thing)."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import httpx
import pytest
from litellm_admin_contract import LiteLLMAdminContract, ProxyState

import realparts
from assay.api import routepolicy
from assay.gateways import factory, interface, litellm_admin
from assaylab import litellm

MASTER_KEY = "sk-master-contract"
ROUTE = "support-summary"


@pytest.fixture
def state() -> ProxyState:
    return ProxyState(
        master_key=MASTER_KEY,
        model_groups=["gpt-big", "gpt-small"],
        db_router_settings={"model_group_alias": {ROUTE: "gpt-big", "billing": "gpt-small"}, "num_retries": 1},
    )


@pytest.fixture
def proxy(state: ProxyState) -> Iterator[LiteLLMAdminContract]:
    with LiteLLMAdminContract(state) as running:
        yield running


def adapter(url: str, *, key: str = MASTER_KEY) -> litellm_admin.LiteLLMAdminGateway:
    return litellm_admin.LiteLLMAdminGateway(
        url=url, route=ROUTE, master_key=lambda: key, key_source="Secret llm/litellm key master", sleep=lambda _: None
    )


def posts(state: ProxyState) -> list[object]:
    return [body for method, path, body in state.requests if method == "POST"]


def test_read_returns_the_live_alias(proxy, state):
    snapshot = adapter(proxy.url).read()
    assert snapshot.model == "gpt-big" and snapshot.entries == {"alias": "gpt-big"}
    assert snapshot.kind == "LiteLLMAdminAPI" and ROUTE in snapshot.location


def test_switch_sends_the_whole_alias_map_with_one_entry_changed(proxy, state):
    gateway = adapter(proxy.url)
    before = gateway.read()
    after = gateway.write(interface.RouteTarget.to_model("gpt-small"), expected=before)
    assert after.model == "gpt-small"
    assert posts(state) == [{"router_settings": {"model_group_alias": {ROUTE: "gpt-small", "billing": "gpt-small"}}}]
    assert state.db_router_settings["num_retries"] == 1  # other router settings untouched


def test_switching_to_the_current_group_writes_nothing(proxy, state):
    gateway = adapter(proxy.url)
    gateway.write(interface.RouteTarget.to_model("gpt-big"), expected=gateway.read())
    assert posts(state) == []


def test_switch_to_an_unknown_model_group_is_refused_before_writing(proxy, state):
    with pytest.raises(interface.ModelGroupNotFound, match="gpt-tiny"):
        adapter(proxy.url).write(interface.RouteTarget.to_model("gpt-tiny"), expected=None)
    with pytest.raises(interface.ModelGroupNotFound):  # an alias is not a model group
        adapter(proxy.url).write(interface.RouteTarget.to_model("billing"), expected=None)
    assert posts(state) == []


def test_hand_edit_is_detected_and_not_overwritten(proxy, state):
    gateway = adapter(proxy.url)
    before = gateway.read()
    state.db_router_settings["model_group_alias"] = {ROUTE: "gpt-small", "billing": "gpt-small"}  # someone, by hand
    with pytest.raises(interface.RouteChangedExternally) as raised:
        gateway.write(interface.RouteTarget.to_model("gpt-small"), expected=before)
    assert raised.value.live.model == "gpt-small"
    assert posts(state) == []


def test_restore_puts_back_exactly_the_snapshot(proxy, state):
    gateway = adapter(proxy.url)
    before = gateway.read()
    gateway.write(interface.RouteTarget.to_model("gpt-small"), expected=before)
    restored = gateway.restore(before)
    assert restored == before
    assert state.aliases() == {ROUTE: "gpt-big", "billing": "gpt-small"}


def test_restore_of_an_absent_alias_removes_it(proxy, state):
    state.db_router_settings["model_group_alias"] = {"billing": "gpt-small"}
    gateway = adapter(proxy.url)
    before = gateway.read()
    assert before.entries == {"alias": None}
    gateway.write(interface.RouteTarget.to_model("gpt-small"), expected=before)
    gateway.restore(before)
    assert state.aliases() == {"billing": "gpt-small"}


def test_mapping_form_alias_keeps_its_hidden_flag(proxy, state):
    state.db_router_settings["model_group_alias"] = {ROUTE: {"model": "gpt-big", "hidden": True}}
    after = adapter(proxy.url).write(interface.RouteTarget.to_model("gpt-small"), expected=None)
    assert after.entries == {"alias": {"model": "gpt-small", "hidden": True}}


def test_transient_failures_are_retried(proxy, state):
    state.fail_next = [503, 502]
    assert adapter(proxy.url).read().model == "gpt-big"


def test_persistent_failure_is_a_retryable_unreachable_gateway(proxy, state):
    state.fail_next = [503] * 10
    with pytest.raises(interface.GatewayUnreachable) as raised:
        adapter(proxy.url).read()
    assert raised.value.retryable and "503" in str(raised.value)


def test_closed_port_is_a_retryable_unreachable_gateway():
    with LiteLLMAdminContract(ProxyState(master_key=MASTER_KEY, model_groups=[])) as stopped:
        url = stopped.url
    with pytest.raises(interface.GatewayUnreachable) as raised:
        adapter(url).read()
    assert raised.value.retryable


def test_wrong_master_key_names_the_secret_not_the_key(proxy, state):
    with pytest.raises(interface.GatewayForbidden) as raised:
        adapter(proxy.url, key="sk-wrong-value").read()
    message = str(raised.value)
    assert "Secret llm/litellm key master" in message and "sk-wrong-value" not in message
    assert not raised.value.retryable


def test_proxy_without_database_explains_the_fix(proxy, state):
    state.database = False
    with pytest.raises(interface.GatewayRejected) as raised:
        adapter(proxy.url).write(interface.RouteTarget.to_model("gpt-small"), expected=None)
    assert "DATABASE_URL" in str(raised.value) and "LiteLLMConfigMap" in str(raised.value)


def test_alias_owned_by_the_config_file_explains_the_fix(proxy, state):
    state.config_router_settings = {"model_group_alias": {ROUTE: "gpt-big"}}
    with pytest.raises(interface.GatewayRejected, match=r"remove router_settings\.model_group_alias"):
        adapter(proxy.url).write(interface.RouteTarget.to_model("gpt-small"), expected=None)


def test_weight_split_is_not_possible_on_litellm(proxy):
    with pytest.raises(interface.CanaryNotSupported):
        adapter(proxy.url).write(interface.RouteTarget.split({"gpt-big": 90, "gpt-small": 10}), expected=None)


def test_factory_reads_the_master_key_from_the_secret_once(proxy):
    reads: list[tuple[str, str, str]] = []

    def secrets(*, namespace: str, name: str, key: str) -> str:
        reads.append((namespace, name, key))
        return MASTER_KEY

    spec = routepolicy.RoutePolicySpec.model_validate(
        {
            "promptType": ROUTE,
            "gateway": {
                "kind": "LiteLLMAdminAPI",
                "url": proxy.url,
                "masterKeySecretRef": {"name": "litellm", "key": "master"},
            },
            "baseline": {"model": "gpt-big"},
            "candidates": [{"name": "small", "model": "gpt-small"}],
            "qualification": {
                "endpoint": {"url": proxy.url},
                "dataset": {"url": "http://d/x.jsonl"},
                "judge": {"model": "j"},
            },
        }
    )
    gateway = factory.for_policy(spec, namespace="llm", api_client=None, secrets=secrets)  # type: ignore[arg-type]
    before = gateway.read()
    gateway.write(factory.target_for(spec, candidate=spec.candidates[0]), expected=before)
    gateway.restore(before)
    assert reads == [("llm", "litellm", "master")]


# --- the real proxy ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[litellm.LiteLLMProxy]:
    realparts.require(f"LiteLLM {litellm.LITELLM_VERSION}", litellm.find_litellm(), "run hack/litellm.sh")
    config = litellm.build_config(
        simulator_url="http://127.0.0.1:9",
        models=["gpt-big", "gpt-small"],
        aliases={ROUTE: "gpt-big"},
        master_key=MASTER_KEY,
    )
    path = litellm.write_config(pathlib.Path(tmp_path_factory.mktemp("litellm")) / "config.yaml", config)
    with litellm.LiteLLMProxy(path) as running:
        yield running


@pytest.mark.litellm
def test_real_proxy_read_matches_the_stand_in(real_proxy):
    real = adapter(real_proxy.url).read()
    state = ProxyState(master_key=MASTER_KEY, model_groups=["gpt-big", "gpt-small"])
    state.config_router_settings = {"model_group_alias": {ROUTE: "gpt-big"}}
    with LiteLLMAdminContract(state) as stand_in:
        recorded = adapter(stand_in.url).read()
        headers = {"Authorization": f"Bearer {MASTER_KEY}"}
        real_body = httpx.get(real_proxy.url + litellm_admin.SETTINGS_PATH, headers=headers).json()
        stand_in_body = httpx.get(stand_in.url + litellm_admin.SETTINGS_PATH, headers=headers).json()
    assert (recorded.entries, recorded.model, recorded.fingerprint) == (real.entries, real.model, real.fingerprint)
    assert set(real_body) == set(stand_in_body)
    assert real_body["source"]["model_group_alias"] == stand_in_body["source"]["model_group_alias"] == "config"
    real_field = next(f for f in real_body["fields"] if f["field_name"] == "model_group_alias")
    assert real_field == stand_in_body["fields"][0]


@pytest.mark.litellm
def test_real_proxy_without_database_refuses_the_write_as_the_stand_in_does(real_proxy):
    with pytest.raises(interface.GatewayRejected) as real:
        adapter(real_proxy.url).write(interface.RouteTarget.to_model("gpt-small"), expected=None)
    with (
        LiteLLMAdminContract(
            ProxyState(master_key=MASTER_KEY, model_groups=["gpt-big", "gpt-small"], database=False)
        ) as stand_in,
        pytest.raises(interface.GatewayRejected) as recorded,
    ):
        adapter(stand_in.url).write(interface.RouteTarget.to_model("gpt-small"), expected=None)
    assert str(real.value).replace(real_proxy.url, "URL") == str(recorded.value).replace(stand_in.url, "URL")
    assert adapter(real_proxy.url).read().model == "gpt-big"
