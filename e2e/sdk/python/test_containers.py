"""Containers through the SDK: what `client.containers` does and reads."""

import io
import tarfile
import time

import docker
import pytest


def run(client, cleanup, name, cmd, **kw):
    c = client.containers.run("alpine", cmd, name=name, detach=True, **kw)
    cleanup["containers"].append(c.id)
    return c


def test_inspect_has_every_key_clients_read(client, cleanup, name, legacy):
    c = run(client, cleanup, name, ["sleep", "300"])
    c.reload()
    a = c.attrs
    assert a["HostConfig"]["LogConfig"] == {"Type": "json-file", "Config": {}}
    # Docker 25+ stores "no" for a policy the client left out; 20.10 kept "".
    assert a["HostConfig"]["RestartPolicy"] == {"Name": "" if legacy else "no", "MaximumRetryCount": 0}
    assert "Mounts" not in a["HostConfig"]  # omitted unless --mount was used, as Docker's
    for key in ["Binds", "NetworkMode", "PortBindings", "AutoRemove", "VolumeDriver", "VolumesFrom", "CapAdd",
                "CapDrop", "Dns", "ExtraHosts", "Privileged", "ReadonlyRootfs", "ShmSize", "Runtime", "Memory",
                "NanoCpus", "CpuShares", "PidsLimit", "Ulimits"]:
        assert key in a["HostConfig"], key
    for key in ["Hostname", "Env", "Cmd", "Image", "WorkingDir", "Entrypoint", "Labels", "Tty", "OpenStdin"]:
        assert key in a["Config"], key
    net = a["NetworkSettings"]["Networks"]["bridge"]
    assert net["IPAddress"].startswith("172.17.") and net["Gateway"] == "172.17.0.1" and net["MacAddress"]
    assert a["State"]["Status"] == "running" and a["State"]["Pid"] > 0
    assert c.status == "running" and c.name == name
    assert c.image.id == client.images.get("alpine").id


def test_logs_wait_and_exit_codes(client, cleanup, name):
    c = run(client, cleanup, name, ["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert c.wait(timeout=60) == {"StatusCode": 3, "Error": None}
    assert c.logs(stdout=True, stderr=False) == b"out\n"
    assert c.logs(stdout=False, stderr=True) == b"err\n"
    assert c.logs(timestamps=True).split(b" ", 1)[0].endswith(b"Z")


def test_run_without_detach_returns_the_output(client, name):
    out = client.containers.run("alpine", ["echo", "hello from berth"], name=name, remove=True)
    assert out == b"hello from berth\n"
    with pytest.raises(docker.errors.ContainerError) as e:
        client.containers.run("alpine", ["sh", "-c", "echo no >&2; exit 2"], remove=True, stderr=True)
    assert e.value.exit_status == 2 and b"no" in e.value.stderr


def test_exec_run_with_and_without_demux(client, cleanup, name):
    c = run(client, cleanup, name, ["sleep", "300"])
    code, out = c.exec_run(["sh", "-c", "echo a; echo b >&2; exit 4"])
    assert code == 4 and b"a\n" in out and b"b\n" in out
    code, (out, err) = c.exec_run(["sh", "-c", "echo a; echo b >&2"], demux=True)
    assert (code, out, err) == (0, b"a\n", b"b\n")
    code, out = c.exec_run("pwd", workdir="/tmp", environment={"X": "1"})
    assert (code, out) == (0, b"/tmp\n")
    code, out = c.exec_run(["sh", "-c", "echo $X"], environment={"X": "1"})
    assert out == b"1\n"


def test_top_stats_pause_and_unpause(client, cleanup, name):
    c = run(client, cleanup, name, ["sleep", "300"])
    top = c.top()
    assert "PID" in top["Titles"] and any("sleep 300" in " ".join(p) for p in top["Processes"]), top
    s = c.stats(stream=False)
    assert s["memory_stats"]["usage"] > 0 and s["pids_stats"]["current"] >= 1
    assert "cpu_usage" in s["cpu_stats"] and s["name"] == "/" + name
    c.pause()
    c.reload()
    assert c.status == "paused" and c.attrs["State"]["Paused"] is True
    with pytest.raises(docker.errors.APIError) as e:
        c.exec_run("true")
    assert e.value.status_code == 409
    c.unpause()
    c.reload()
    assert c.status == "running"


def test_rename_update_restart_and_kill(client, cleanup, name):
    c = run(client, cleanup, name, ["sleep", "300"])
    c.rename(name + "-new")
    c.reload()
    assert c.name == name + "-new"
    c.update(mem_limit="64m", memswap_limit="128m", restart_policy={"Name": "on-failure", "MaximumRetryCount": 2})
    c.reload()
    assert c.attrs["HostConfig"]["Memory"] == 64 * 1024 * 1024
    assert c.attrs["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    pid = c.attrs["State"]["Pid"]
    c.restart(timeout=0)
    c.reload()
    assert c.status == "running" and c.attrs["State"]["Pid"] != pid
    c.kill()
    assert c.wait(timeout=30)["StatusCode"] == 137
    c.reload()
    assert c.status == "exited"


def test_archive_both_ways(client, cleanup, name):
    c = run(client, cleanup, name, ["sleep", "300"])
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        data = b"put by the sdk\n"
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    assert c.put_archive("/tmp", buf.getvalue()) is True
    assert c.exec_run("cat /tmp/hello.txt").output == b"put by the sdk\n"
    stream, stat = c.get_archive("/tmp/hello.txt")
    assert stat["name"] == "hello.txt" and stat["size"] == 15
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as t:
        assert t.extractfile("hello.txt").read() == b"put by the sdk\n"
    with pytest.raises(docker.errors.NotFound):
        c.get_archive("/no/such/path")


def test_commit_and_export(client, cleanup, name):
    c = run(client, cleanup, name, ["sh", "-c", "echo kept > /kept; sleep 300"])
    time.sleep(0.5)
    img = c.commit(repository=name, tag="v1", message="by the sdk", changes=["ENV COMMITTED=1"])
    cleanup["images"].append(img.id)
    assert f"{name}:v1" in img.tags and "COMMITTED=1" in img.attrs["Config"]["Env"]
    out = client.containers.run(img.id, ["cat", "/kept"], remove=True)
    assert out == b"kept\n"
    with tarfile.open(fileobj=io.BytesIO(b"".join(c.export()))) as t:
        assert "kept" in t.getnames() and "bin/sh" in t.getnames()


def test_diff_ports_labels_and_filters(client, cleanup, name):
    c = run(client, cleanup, name, ["sh", "-c", "touch /made; sleep 300"], labels={"lab": "sdk"}, ports={"80/tcp": None})
    decoy = run(client, cleanup, name + "-decoy", ["sleep", "300"], labels={"lab": "other"})
    done = run(client, cleanup, name + "-done", ["sh", "-c", "exit 5"])
    done.wait(timeout=30)
    time.sleep(0.5)
    assert {"Path": "/made", "Kind": 1} in c.diff()
    c.reload()
    port = c.ports["80/tcp"][0]["HostPort"]
    assert port.isdigit() and c.labels == {"lab": "sdk"}
    ids = lambda **kw: [x.id for x in client.containers.list(**kw)]
    assert ids(filters={"label": "lab=sdk"}) == [c.id]
    assert ids(filters={"label": "lab"}) == [decoy.id, c.id]
    assert ids(filters={"name": f"^/{name}$"}) == [c.id]
    assert ids(all=True, filters={"exited": 5}) == [done.id]
    assert ids(filters={"status": "exited", "name": name}) == [done.id]
    assert ids(filters={"publish": port}) == [c.id]
    assert ids(filters={"expose": "80"}) == [c.id]
    # (The SDK's since=/before= arguments are query parameters Docker ignores: filters it reads.)
    assert ids(all=True, filters={"name": name, "since": c.id}) == [done.id, decoy.id]
    assert ids(all=True, filters={"name": name, "before": decoy.id}) == [c.id]
    assert ids(limit=1, filters={"name": name}) == [done.id]
    assert c.id in ids(filters={"ancestor": "alpine"})
    with pytest.raises(docker.errors.APIError) as e:
        client.containers.list(filters={"status": "sleeping"})
    assert e.value.status_code == 400


def test_healthchecks_and_restart_policies(client, cleanup, name):
    c = run(client, cleanup, name, ["sleep", "300"],
            healthcheck={"test": ["CMD", "true"], "interval": 200_000_000, "start_period": 0, "retries": 1})
    deadline = time.time() + 20
    while c.health != "healthy" and time.time() < deadline:
        time.sleep(0.2)
        c.reload()
    assert c.health == "healthy"
    r = run(client, cleanup, name + "-r", ["sh", "-c", "exit 1"], restart_policy={"Name": "on-failure", "MaximumRetryCount": 2})
    deadline = time.time() + 30
    while time.time() < deadline:
        r.reload()
        if r.attrs["RestartCount"] == 2 and r.status == "exited":
            break
        time.sleep(0.2)
    assert r.attrs["RestartCount"] == 2 and r.status == "exited"


def test_errors_are_the_sdks_exceptions(client, cleanup, name, legacy):
    with pytest.raises(docker.errors.NotFound):
        client.containers.get("no-such-container")
    with pytest.raises(docker.errors.ImageNotFound):
        client.containers.create("no-such-image:never", ["true"])
    c = client.containers.create("alpine", ["true"], name=name)
    cleanup["containers"].append(c.id)
    with pytest.raises(docker.errors.APIError) as e:
        client.containers.create("alpine", ["true"], name=name)
    assert e.value.status_code == 409 and "is already in use" in str(e.value)
    with pytest.raises(docker.errors.APIError) as e:
        client.api.create_container("alpine", ["true"], host_config={"Memory": "lots"})
    # A client's malformed body: 400 (Docker 23+); 20.10 answered 500.
    assert e.value.status_code == (500 if legacy else 400)


def test_prune_removes_stopped_containers(client, name):
    c = client.containers.create("alpine", ["true"], name=name)
    pruned = client.containers.prune()
    assert c.id in pruned["ContainersDeleted"] and "SpaceReclaimed" in pruned
