"""The egress rule: which addresses assay calls, decided on the address actually dialled, and the URL checks
every client of the one HTTP client factory applies before a byte is sent."""

from __future__ import annotations

import asyncio
import ipaddress
import pathlib

import httpx
import pytest
import yaml
from aiohttp import web

from assay import egress, httpclient
from assay.api import qualificationrun
from assay.controllers import manifests

EXAMPLE_RUN = pathlib.Path(__file__).resolve().parents[2] / "examples" / "qualificationrun.yaml"

CLOSED = egress.EgressPolicy()
LOCAL = egress.EgressPolicy(allow_loopback=True)
CLUSTER = egress.EgressPolicy.from_env(
    {
        egress.ENV_ALLOWED_CIDRS: "10.96.0.0/12, 169.254.0.0/16",
        egress.ENV_ALLOWED_HOSTS: ".svc.cluster.local,litellm.internal.example",
    }
)


@pytest.mark.parametrize(
    ("policy", "address", "host", "refused_because"),
    [
        (CLOSED, "169.254.169.254", "evil.example", "metadata"),
        (CLUSTER, "169.254.169.254", "litellm.llm.svc.cluster.local", "metadata"),  # no allow-list opens it
        (CLOSED, "::ffff:169.254.169.254", "evil.example", "metadata"),
        (CLOSED, "fd00:ec2::254", "evil.example", "metadata"),
        (CLOSED, "100.100.100.200", "evil.example", "metadata"),
        (CLOSED, "169.254.10.1", "x.example", "link-local"),
        (CLOSED, "fe80::1", "x.example", "link-local"),
        (CLOSED, "224.0.0.251", "x.example", "multicast"),
        (CLOSED, "0.0.0.0", "x.example", "unspecified"),
        (CLOSED, "127.0.0.1", "localhost", "loopback"),
        (CLOSED, "::1", "localhost", "loopback"),
        (CLOSED, "10.0.0.7", "x.example", "private"),
        (CLOSED, "192.168.1.1", "router.example", "private"),
        (CLOSED, "fd12:3456::1", "x.example", "private"),
        (CLOSED, "100.64.0.1", "x.example", "private"),
        (CLUSTER, "10.0.0.7", "x.example", "private"),  # outside the allowed 10.96.0.0/12
        (CLUSTER, "127.0.0.1", "x.example", "loopback"),
    ],
)
def test_refused_addresses_say_why(policy, address, host, refused_because):
    problem = policy.refusal(ipaddress.ip_address(address), host=host)
    assert problem is not None and refused_because in problem


@pytest.mark.parametrize(
    ("policy", "address", "host"),
    [
        (CLOSED, "93.184.216.34", "api.example.com"),
        (CLOSED, "2606:2800:220:1:248:1893:25c8:1946", "api.example.com"),
        (LOCAL, "127.0.0.1", "localhost"),
        (LOCAL, "::1", "localhost"),
        (CLUSTER, "10.100.3.4", "anything.example"),
        (CLUSTER, "10.0.0.7", "litellm.llm.svc.cluster.local"),
        (CLUSTER, "192.168.9.9", "litellm.internal.example."),
    ],
)
def test_allowed_addresses(policy, address, host):
    assert policy.refusal(ipaddress.ip_address(address), host=host) is None


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({egress.ENV_ALLOWED_CIDRS: "10.0.0.0/8,not-a-cidr"}, egress.ENV_ALLOWED_CIDRS),
        ({egress.ENV_ALLOW_LOOPBACK: "yes"}, egress.ENV_ALLOW_LOOPBACK),
    ],
)
def test_a_bad_setting_names_its_variable(env, named):
    with pytest.raises(ValueError, match=named):
        egress.EgressPolicy.from_env(env)


def test_default_policy_allows_no_loopback_and_no_private_range():
    assert egress.EgressPolicy.from_env({}) == CLOSED


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://bucket.s3.amazonaws.com/d.jsonl?X-Amz-Signature=s3cr3t", "https://bucket.s3.amazonaws.com"),
        ("http://user:key@10.0.0.1:9000/p", "http://10.0.0.1:9000"),
        ("http://[::1]:4000/v1", "http://[::1]:4000"),
        ("not a url", "<URL without a scheme>"),
    ],
)
def test_redact_keeps_scheme_and_host_only(url, shown):
    assert egress.redact(url) == shown


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://user:key@127.0.0.1:1/v1", "credentials"),
        ("ftp://127.0.0.1/x", "only http and https"),
    ],
)
async def test_url_checks_run_before_any_connection(url, problem):
    async with httpclient.make_async_client(policy=LOCAL) as client:
        with pytest.raises(egress.EgressDenied, match=problem):
            await client.get(url)


@pytest.fixture
async def server():
    hits: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/ping", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        yield port, hits
    finally:
        await runner.cleanup()


async def test_loopback_is_called_only_when_allowed_and_a_name_does_not_get_around_it(server):
    port, hits = server
    async with httpclient.make_async_client(policy=CLOSED) as client:
        for host in ("127.0.0.1", "localhost"):
            with pytest.raises(egress.EgressDenied, match="loopback"):
                await client.get(f"http://{host}:{port}/ping")
    assert hits == []
    async with httpclient.make_async_client(policy=LOCAL) as client:
        assert (await client.get(f"http://localhost:{port}/ping")).json() == {"ok": True}
    assert hits == ["/ping"]


async def test_the_sync_client_applies_the_same_rule(server):
    port, hits = server
    with httpclient.make_client(policy=CLOSED) as client, pytest.raises(egress.EgressDenied, match="loopback"):
        await _in_thread(client, f"http://127.0.0.1:{port}/ping")
    with httpclient.make_client(policy=LOCAL) as client:
        assert (await _in_thread(client, f"http://127.0.0.1:{port}/ping")).status_code == 200
    assert hits == ["/ping"]


async def test_metadata_address_is_refused_without_dialling():
    async with httpclient.make_async_client(policy=CLUSTER, timeout=1) as client:
        with pytest.raises(egress.EgressDenied, match="metadata"):
            await client.get("http://169.254.169.254/latest/meta-data/")


def test_the_factory_reads_the_policy_from_the_environment(monkeypatch):
    monkeypatch.setenv(egress.ENV_ALLOW_LOOPBACK, "false")
    monkeypatch.setenv(egress.ENV_ALLOWED_CIDRS, "10.96.0.0/12")
    assert egress.current_policy() == egress.EgressPolicy(allowed_networks=(ipaddress.ip_network("10.96.0.0/12"),))


async def _in_thread(client: httpx.Client, url: str) -> httpx.Response:
    return await asyncio.to_thread(client.get, url)


def test_evaluation_jobs_carry_the_operators_egress_rule(monkeypatch):
    monkeypatch.setenv(egress.ENV_ALLOWED_CIDRS, "10.96.0.0/12")
    monkeypatch.setenv(egress.ENV_ALLOW_LOOPBACK, "false")
    monkeypatch.delenv(egress.ENV_ALLOWED_HOSTS, raising=False)
    spec = qualificationrun.QualificationRunSpec.model_validate(yaml.safe_load(EXAMPLE_RUN.read_text())["spec"])
    job = manifests.evaluation_job(run_name="r", run_uid="u", namespace="n", spec=spec, wire_spec=spec.to_wire())
    (container,) = job["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert egress.EgressPolicy.from_env(env) == egress.current_policy()
    assert egress.ENV_ALLOWED_HOSTS not in env
