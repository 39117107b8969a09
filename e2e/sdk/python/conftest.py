"""Docker's Python SDK (the `docker` package on PyPI) against berthd.

Run by e2e/tests/e2e/sdk.rs inside a sandboxed node1: DOCKER_HOST is berthd's
socket (or, to show the suite asserts Docker's behaviour, a reference Docker
daemon's), pulling through the sandbox's fixture registry. Each test does
what a lab script does with the SDK and checks what Docker answers at the
API version the client speaks (SDK_API_VERSION pins one; default: the
newest both speak).
"""

import os
import uuid

import docker
import pytest


@pytest.fixture(scope="session")
def client():
    c = docker.DockerClient(base_url=os.environ["DOCKER_HOST"], version=os.environ.get("SDK_API_VERSION", "auto"), timeout=120)
    c.images.pull("alpine", tag="latest")
    yield c
    c.close()


@pytest.fixture(scope="session")
def old_client():
    """A client pinned to API 1.41 (Docker 20.10's), as older SDKs speak."""
    c = docker.DockerClient(base_url=os.environ["DOCKER_HOST"], version="1.41", timeout=120)
    yield c
    c.close()


@pytest.fixture
def name():
    """A fresh name for what one test makes."""
    return "sdk-" + uuid.uuid4().hex[:10]


@pytest.fixture
def cleanup(client):
    """Containers, networks and volumes a test registers are removed after it."""
    made = {"containers": [], "networks": [], "volumes": [], "images": []}
    yield made
    for c in made["containers"]:
        try:
            client.api.remove_container(c, force=True, v=True)
        except docker.errors.NotFound:
            pass
    for n in made["networks"]:
        try:
            client.api.remove_network(n)
        except docker.errors.NotFound:
            pass
    for v in made["volumes"]:
        try:
            client.api.remove_volume(v, force=True)
        except docker.errors.NotFound:
            pass
    for i in made["images"]:
        try:
            client.api.remove_image(i, force=True)
        except docker.errors.ImageNotFound:
            pass


def at_least(client, minor):
    """Does the client speak API 1.<minor> or newer?"""
    return int(client.api.api_version.split(".")[1]) >= minor


@pytest.fixture(scope="session")
def legacy(client):
    """Is the daemon Docker 20.10 (the reference), whose answers Docker 23+
    changed in places the suite names?"""
    return client.version()["Version"].startswith("20.")
