"""System endpoints as the SDK reads them."""

import os

import docker
import pytest

from conftest import at_least


def test_ping_version_and_negotiation(client, old_client, legacy):
    assert client.ping() is True
    v = client.version()
    if not legacy:
        assert v["ApiVersion"] == "1.50" and v["MinAPIVersion"] == "1.24"
    assert v["Os"] == "linux" and v["Components"][0]["Name"] == "Engine"
    # version="auto" negotiated the newest both speak.
    if os.environ.get("SDK_API_VERSION", "auto") == "auto":
        assert client.api.api_version == v["ApiVersion"]
    assert old_client.api.api_version == "1.41"
    assert old_client.version()["ApiVersion"] == v["ApiVersion"]


def test_info_has_the_keys_clients_read(client):
    info = client.info()
    for key in ["ID", "Containers", "ContainersRunning", "Images", "Driver", "DockerRootDir", "LoggingDriver",
                "CgroupDriver", "CgroupVersion", "KernelVersion", "OperatingSystem", "NCPU", "MemTotal",
                "SecurityOptions", "Name", "ServerVersion", "Swarm"]:
        assert key in info, key
    assert info["Driver"] == "overlay2" and info["LoggingDriver"] == "json-file"
    assert info["Swarm"]["LocalNodeState"] == "inactive"
    assert ("BridgeNfIptables" in info) != at_least(client, 50)  # gone in API 1.50


def test_swarm_endpoints_say_this_node_is_not_in_a_swarm(client):
    # The SDK's teardown (force) takes the 503 as done, as it does on Docker.
    assert client.swarm.leave(force=True) is True
    with pytest.raises(docker.errors.APIError) as e:
        client.swarm.leave()
    assert e.value.status_code == 503
    assert "This node is not part of a swarm" in str(e.value)
    with pytest.raises(docker.errors.APIError) as e:
        client.services.list()
    assert e.value.status_code == 503


def test_an_unknown_route_is_a_json_404(client):
    r = client.api.get(client.api._url("/no/such/route"))
    assert r.status_code == 404
    assert r.json()["message"] == "page not found"


def test_disk_usage(client, cleanup, name, legacy):
    c = client.containers.run("alpine", ["sh", "-c", "head -c 100000 /dev/zero > /big"], name=name, detach=True)
    cleanup["containers"].append(c.id)
    c.wait(timeout=60)
    vol = client.volumes.create(name + "-v")
    cleanup["volumes"].append(vol.name)
    df = client.df()
    assert df["LayersSize"] > 0
    images = {i["Id"]: i for i in df["Images"]}
    alpine = client.images.get("alpine")
    assert images[alpine.id]["Size"] > 0 and images[alpine.id]["Containers"] >= 1
    mine = [x for x in df["Containers"] if x["Id"] == c.id]
    assert mine and mine[0]["SizeRw"] >= 100000, mine
    vols = {v["Name"]: v for v in df["Volumes"]}
    assert vols[vol.name]["UsageData"] == {"Size": 0, "RefCount": 0}
    # Docker 23+ answers an empty build cache with [], 20.10 with null.
    assert isinstance(df["BuildCache"], list) or legacy and df["BuildCache"] is None


def test_events_between_two_times(client, cleanup, name):
    import time
    since = int(time.time())
    c = client.containers.create("alpine", ["true"], name=name)
    cleanup["containers"].append(c.id)
    c.remove()
    until = int(time.time()) + 1
    events = list(client.events(since=since, until=until, decode=True, filters={"container": name}))
    actions = [e["Action"] for e in events if e.get("Type") == "container"]
    assert "create" in actions and "destroy" in actions, actions
    create = next(e for e in events if e["Action"] == "create")
    assert create["Actor"]["ID"] == c.id and create["Actor"]["Attributes"]["name"] == name
