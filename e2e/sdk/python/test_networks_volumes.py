"""Networks and volumes through the SDK."""

import docker
import pytest
from docker.types import IPAMConfig, IPAMPool

from conftest import at_least


def test_a_network_with_its_own_subnet_static_ips_and_aliases(client, cleanup, name, legacy):
    ipam = IPAMConfig(pool_configs=[IPAMPool(subnet="10.77.0.0/24", gateway="10.77.0.1")])
    net = client.networks.create(name, driver="bridge", ipam=ipam, labels={"lab": "sdk"})
    cleanup["networks"].append(net.id)
    assert net.attrs["IPAM"]["Config"][0]["Subnet"] == "10.77.0.0/24"
    assert net.attrs["Labels"] == {"lab": "sdk"} and net.attrs["Driver"] == "bridge"
    a = client.containers.run("alpine", ["sleep", "300"], name=name + "-a", detach=True, network=name)
    cleanup["containers"].append(a.id)
    b = client.containers.create("alpine", ["sleep", "300"], name=name + "-b")
    cleanup["containers"].append(b.id)
    net.connect(b, ipv4_address="10.77.0.50", aliases=["db"])
    b.start()
    b.reload()
    ep = b.attrs["NetworkSettings"]["Networks"][name]
    # From 1.45 Aliases are what was asked; before, the short ID was added.
    assert ep["IPAddress"] == "10.77.0.50" and ep["Aliases"] == (["db"] if at_least(client, 45) else ["db", b.id[:12]])
    assert ep["IPAMConfig"]["IPv4Address"] == "10.77.0.50"
    if at_least(client, 44):
        assert "db" in ep["DNSNames"] and name + "-b" in ep["DNSNames"]
    code, out = a.exec_run(["ping", "-c1", "-W2", "db"])
    assert code == 0, out
    net.reload()
    assert {c.id for c in net.containers} == {a.id, b.id}
    net.disconnect(b, force=True)
    b.reload()
    assert name not in b.attrs["NetworkSettings"]["Networks"]
    assert [n.id for n in client.networks.list(filters={"label": "lab=sdk"})] == [net.id]
    # A second network of the same name: refused by Docker 25+ (20.10 made it).
    if not legacy:
        with pytest.raises(docker.errors.APIError) as e:
            client.networks.create(name)
        assert e.value.status_code == 409


def test_network_errors_and_prune(client, name):
    with pytest.raises(docker.errors.NotFound):
        client.networks.get("no-such-network")
    client.networks.create(name)
    assert name in client.networks.prune()["NetworksDeleted"]


def test_volumes_labels_filters_and_removal(client, cleanup, name):
    v = client.volumes.create(name, labels={"lab": "sdk"})
    cleanup["volumes"].append(v.name)
    assert v.attrs["Driver"] == "local" and v.attrs["Labels"] == {"lab": "sdk"}
    assert v.attrs["Mountpoint"].endswith(f"/volumes/{name}/_data")
    assert [x.name for x in client.volumes.list(filters={"label": "lab=sdk"})] == [name]
    c = client.containers.run("alpine", ["sh", "-c", "echo kept > /data/f"], volumes={name: {"bind": "/data", "mode": "rw"}}, detach=True)
    cleanup["containers"].append(c.id)
    c.wait(timeout=60)
    out = client.containers.run("alpine", ["cat", "/data/f"], volumes=[f"{name}:/data:ro"], remove=True)
    assert out == b"kept\n"
    with pytest.raises(docker.errors.APIError) as e:
        v.remove()
    assert e.value.status_code == 409 and "volume is in use" in str(e.value)
    c.remove()
    v.remove()
    with pytest.raises(docker.errors.NotFound):
        client.volumes.get(name)


def test_volume_prune_keeps_named_volumes_unless_all_or_an_old_client(client, old_client, name):
    if at_least(client, 42):
        client.volumes.create(name)
        assert name not in (client.volumes.prune()["VolumesDeleted"] or [])
        assert name in client.volumes.prune(filters={"all": True})["VolumesDeleted"]
    old_client.volumes.create(name)
    assert name in old_client.volumes.prune()["VolumesDeleted"]
