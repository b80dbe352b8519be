import pytest
from kubernetes import client

pytestmark = pytest.mark.integration


def test_control_plane_serves_assay_crds_with_token_auth(kube):
    api = client.ApiextensionsV1Api(kube.api_client())
    names = {crd.metadata.name for crd in api.list_custom_resource_definition().items}
    assert {"routepolicies.assay.dev", "qualificationruns.assay.dev"} <= names
