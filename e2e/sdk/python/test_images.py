"""Images through the SDK: pull, inspect, tag, build, save/load, import, prune."""

import io
import tarfile

import docker
import pytest

from conftest import at_least


def test_pull_inspect_history_and_tag(client, cleanup, name):
    img = client.images.pull("alpine", tag="latest")
    assert "alpine:latest" in img.tags and img.id.startswith("sha256:")
    a = img.attrs
    assert a["RootFS"]["Type"] == "layers" and a["RootFS"]["Layers"]
    assert a["Os"] == "linux" and a["Size"] > 0 and a["Config"]["Cmd"]
    assert ("VirtualSize" in a) != at_least(client, 44) and ("ContainerConfig" in a) != at_least(client, 45)
    hist = img.history()
    assert hist[0]["Id"] == img.id and all("CreatedBy" in h for h in hist)
    assert img.tag(name, "t1") is True
    cleanup["images"].append(f"{name}:t1")
    assert f"{name}:t1" in client.images.get(img.id).tags
    listed = client.images.list(name=name)
    assert [i.id for i in listed] == [img.id]
    assert client.images.list(filters={"reference": f"{name}:*"})[0].id == img.id
    reg = client.images.get_registry_data("alpine")
    assert reg.id.startswith("sha256:")


def test_build_from_a_dockerfile_stream(client, cleanup, name):
    df = io.BytesIO(b"FROM alpine\nRUN echo built > /built\nENV BUILT=yes\nCMD [\"cat\", \"/built\"]\n")
    img, logs = client.images.build(fileobj=df, tag=f"{name}:b", rm=True)
    cleanup["images"].append(f"{name}:b")
    logs = list(logs)
    assert any("Successfully built" in l.get("stream", "") for l in logs), logs
    assert "BUILT=yes" in img.attrs["Config"]["Env"]
    assert client.containers.run(img.id, remove=True) == b"built\n"
    with pytest.raises(docker.errors.BuildError) as e:
        client.images.build(fileobj=io.BytesIO(b"FROM alpine\nRUN exit 7\n"))
    assert "returned a non-zero code: 7" in str(e.value)


def test_build_with_a_context_and_build_args(client, cleanup, name):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for path, data in [("Dockerfile", b"FROM alpine\nARG WHO\nCOPY app.txt /app.txt\nRUN echo $WHO >> /app.txt\n"),
                           ("app.txt", b"app\n")]:
            info = tarfile.TarInfo(path)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    buf.seek(0)
    img, _ = client.images.build(fileobj=buf, custom_context=True, tag=f"{name}:ctx", buildargs={"WHO": "sdk"})
    cleanup["images"].append(f"{name}:ctx")
    assert client.containers.run(img.id, ["cat", "/app.txt"], remove=True) == b"app\nsdk\n"


def test_save_and_load_keep_the_image_id(client, cleanup, name):
    img = client.images.get("alpine")
    img.tag(name, "saved")
    cleanup["images"].append(f"{name}:saved")
    data = b"".join(client.images.get(f"{name}:saved").save(named=f"{name}:saved"))
    client.images.remove(f"{name}:saved")
    loaded = client.images.load(data)
    assert [i.id for i in loaded] == [img.id]
    assert f"{name}:saved" in client.images.get(img.id).tags


def test_import_from_a_tarball(client, cleanup, name):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        info = tarfile.TarInfo("hello")
        info.size = 3
        t.addfile(info, io.BytesIO(b"hi\n"))
    client.api.import_image_from_data(buf.getvalue(), repository=name, tag="imp", changes=["ENV IMPORTED=1"])
    cleanup["images"].append(f"{name}:imp")
    img = client.images.get(f"{name}:imp")
    assert "IMPORTED=1" in (img.attrs["Config"]["Env"] or [])
    assert len(img.attrs["RootFS"]["Layers"]) == 1


def test_remove_and_prune(client, name):
    img = client.images.get("alpine")
    img.tag(name, "gone")
    client.images.remove(f"{name}:gone")
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(f"{name}:gone")
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.remove("no-such-image:never")
    pruned = client.images.prune(filters={"dangling": True})
    assert "SpaceReclaimed" in pruned
    assert "SpaceReclaimed" in client.images.prune_builds()
