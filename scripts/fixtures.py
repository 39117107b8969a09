#!/usr/bin/env python3
"""Build berth's fixture images from Debian packages and push them to a registry.

No machine here reaches Docker Hub, so the lab's images are made from what
Debian installed on this host and pushed to a local registry (Debian's
docker-registry). Each image is a real multi-layer image: gzip'd tar layers,
a config with diff_ids and history, and a manifest (Docker schema2 or OCI),
some behind an index so that platform selection is exercised too.

    fixture (registry repo)       stands in for        built from
    library/hello-world:latest    hello-world          a static C program (gcc, libc6-dev)
    library/alpine:latest         alpine               busybox-static, all applets linked
    library/nginx:alpine          nginx:alpine         busybox base + Debian nginx-light + its libs

Usage: fixtures.py REGISTRY_URL        (e.g. http://127.0.0.1:5000)
       fixtures.py --check REGISTRY_URL
"""
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request

EPOCH = 1767225600  # 2026-01-01T00:00:00Z: fixed, so rebuilds give the same digests
CREATED = "2026-01-01T00:00:00Z"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MT_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

# name -> (repo, tag); what --check verifies and the README's table lists.
FIXTURES = {
    "hello-world": ("library/hello-world", "latest"),
    "alpine": ("library/alpine", "latest"),
    "nginx": ("library/nginx", "alpine"),
    "gourmetgram-base": ("library/gourmetgram-base", "libtorch-2.13.0"),
}
# libtorch for the GourmetGram base: the CPU libraries of the PyPI torch
# wheel (scripts/gourmetgram.sh libtorch makes this directory).
LIBTORCH_LIB = os.environ.get(
    "BERTH_LIBTORCH_LIB",
    os.path.join(os.environ.get("BERTH_STATE", "/var/lib/berth-lab"), "libtorch-cpu", "lib"))
LIBTORCH_IN_IMAGE = "opt/libtorch/lib"
TURBOJPEG = "/usr/lib/x86_64-linux-gnu/libturbojpeg.so.0"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Layer:
    """A layer built in memory from (path-in-image, kind, payload) entries."""

    def __init__(self, comment: str, gzip_level: int = 9):
        self.comment = comment
        self.gzip_level = gzip_level  # 1 for the big libtorch layer: seconds, not a minute
        self.entries = {}  # path -> (TarInfo, bytes|None)

    def _info(self, path, kind, mode, uid=0, gid=0):
        ti = tarfile.TarInfo(path.lstrip("/"))
        ti.type = kind
        ti.mode = mode
        ti.uid, ti.gid = uid, gid
        ti.uname = ti.gname = ""
        ti.mtime = EPOCH
        return ti

    def dir(self, path, mode=0o755, uid=0, gid=0):
        parts = path.strip("/").split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent not in self.entries:
                self.entries[parent] = (self._info(parent, tarfile.DIRTYPE, 0o755), None)
        self.entries[path.strip("/")] = (self._info(path, tarfile.DIRTYPE, mode, uid, gid), None)

    def file(self, path, data: bytes, mode=0o644, uid=0, gid=0):
        if "/" in path.strip("/"):
            self.dir(os.path.dirname(path.strip("/")))
        ti = self._info(path, tarfile.REGTYPE, mode, uid, gid)
        ti.size = len(data)
        self.entries[path.strip("/")] = (ti, data)

    def host_file(self, host_path, path=None, mode=None):
        with open(host_path, "rb") as f:
            data = f.read()
        st = os.stat(host_path)
        self.file(path or host_path, data, mode if mode is not None else (st.st_mode & 0o7777))

    def symlink(self, path, target):
        if "/" in path.strip("/"):
            self.dir(os.path.dirname(path.strip("/")))
        ti = self._info(path, tarfile.SYMTYPE, 0o777)
        ti.linkname = target
        self.entries[path.strip("/")] = (ti, None)

    def tar(self) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
            for path in sorted(k for k in self.entries if k != "."):
                ti, data = self.entries[path]
                tf.addfile(ti, io.BytesIO(data) if data is not None else None)
        return buf.getvalue()


class Image:
    def __init__(self, layers, config, arch="amd64"):
        self.layers = layers
        self.config = config
        self.arch = arch

    def blobs(self, oci: bool):
        """Returns (config_bytes, [(layer_gz_bytes, diff_id)])."""
        layer_blobs = []
        diff_ids = []
        for layer in self.layers:
            raw = layer.tar()
            diff_ids.append(sha256(raw))
            layer_blobs.append(gzip.compress(raw, compresslevel=layer.gzip_level, mtime=0))
        cfg = {
            "architecture": self.arch,
            "os": "linux",
            "created": CREATED,
            "config": self.config,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [
                {"created": CREATED, "created_by": l.comment} for l in self.layers
            ],
        }
        return json.dumps(cfg, sort_keys=True).encode(), list(zip(layer_blobs, diff_ids))


def manifest_for(config_bytes, layers, oci: bool):
    return {
        "schemaVersion": 2,
        "mediaType": MT_OCI_MANIFEST if oci else MT_DOCKER_MANIFEST,
        "config": {
            "mediaType": MT_OCI_CONFIG if oci else MT_DOCKER_CONFIG,
            "size": len(config_bytes),
            "digest": sha256(config_bytes),
        },
        "layers": [
            {
                "mediaType": MT_OCI_LAYER if oci else MT_DOCKER_LAYER,
                "size": len(gz),
                "digest": sha256(gz),
            }
            for gz, _ in layers
        ],
    }


# ---------------------------------------------------------------- the images
def busybox_layer():
    layer = Layer("berth fixture: busybox-static with every applet linked (alpine stand-in)")
    for d in ["bin", "sbin", "usr/bin", "usr/sbin", "etc", "root", "home", "var", "var/log",
              "var/run", "run", "proc", "sys", "dev", "mnt", "opt", "srv", "lib", "media"]:
        layer.dir(d, 0o700 if d == "root" else 0o755)
    layer.dir("tmp", 0o1777)
    layer.host_file("/bin/busybox", "bin/busybox", 0o755)
    applets = subprocess.run(["/bin/busybox", "--list-full"], check=True,
                             capture_output=True, text=True).stdout.split()
    for applet in applets:
        if applet == "bin/busybox":
            continue
        layer.symlink(applet, "/bin/busybox")
    layer.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"
               b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    layer.file("etc/group", b"root:x:0:\nnogroup:x:65534:\n")
    layer.file("etc/shadow", b"root:*::0:::::\n", 0o640)
    layer.file("etc/os-release", b'NAME="berth busybox fixture"\nID=berth-busybox\n'
               b'PRETTY_NAME="busybox-static from Debian, standing in for alpine"\n')
    return layer


def shared_libs(binary, env=None):
    """Host paths of the shared libraries (and loader) a binary needs, via ldd."""
    out = subprocess.run(["ldd", binary], check=True, capture_output=True, text=True,
                         env=env).stdout
    libs = []
    for line in out.splitlines():
        parts = line.split()
        if "=>" in parts and len(parts) >= 3 and parts[2].startswith("/"):
            libs.append(parts[2])
        elif parts and parts[0].startswith("/"):
            libs.append(parts[0])
    return libs


def glibc_layer(binaries, comment, env=None):
    layer = Layer(comment)
    # Debian 12 has a merged /usr: /lib and /lib64 point into /usr.
    layer.symlink("lib64", "usr/lib64")
    seen = set()
    for b in binaries:
        for lib in shared_libs(b, env):
            if not lib.startswith(("/lib", "/usr/lib")):
                continue  # not the system's (libtorch's own go in their own layer)
            real = os.path.realpath(lib)
            if lib.startswith("/lib64/"):
                dest = "usr/lib64/" + os.path.basename(lib)
            else:
                dest = "usr/lib/x86_64-linux-gnu/" + os.path.basename(lib)
            if dest not in seen:
                seen.add(dest)
                layer.host_file(real, dest, 0o755)
    return layer


NGINX_CONF = b"""# berth fixture: Debian's nginx configured like the nginx:alpine image.
user nginx;
worker_processes 1;
pid /run/nginx.pid;
error_log /var/log/nginx/error.log notice;

events {
    worker_connections 1024;
}

http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    log_format main '$remote_addr - $remote_user [$time_local] "$request" '
                    '$status $body_bytes_sent "$http_referer" '
                    '"$http_user_agent" "$http_x_forwarded_for"';
    access_log /var/log/nginx/access.log main;
    sendfile on;
    keepalive_timeout 65;
    include /etc/nginx/conf.d/*.conf;
}
"""

NGINX_DEFAULT_SITE = b"""server {
    listen 80;
    listen [::]:80;
    server_name localhost;

    location / {
        root /usr/share/nginx/html;
        index index.html index.htm;
    }

    error_page 500 502 503 504 /50x.html;
    location = /50x.html {
        root /usr/share/nginx/html;
    }
}
"""


def nginx_layer():
    layer = Layer("berth fixture: Debian nginx-light, logs to stdout/stderr")
    layer.host_file("/usr/sbin/nginx", "usr/sbin/nginx", 0o755)
    layer.host_file("/etc/nginx/mime.types", "etc/nginx/mime.types", 0o644)
    layer.file("etc/nginx/nginx.conf", NGINX_CONF)
    layer.file("etc/nginx/conf.d/default.conf", NGINX_DEFAULT_SITE)
    layer.host_file("/usr/share/nginx/html/index.html", "usr/share/nginx/html/index.html", 0o644)
    layer.file("usr/share/nginx/html/50x.html",
               b"<!DOCTYPE html>\n<html><head><title>Error</title></head>\n"
               b"<body><h1>An error occurred.</h1></body></html>\n")
    layer.dir("var/log/nginx")
    # As the official image does: the log files are the container's stdout/stderr.
    layer.symlink("var/log/nginx/access.log", "/dev/stdout")
    layer.symlink("var/log/nginx/error.log", "/dev/stderr")
    for d in ["body", "proxy", "fastcgi", "uwsgi", "scgi"]:
        layer.dir("var/lib/nginx/" + d, 0o700, 101, 101)
    layer.dir("var/cache/nginx")
    # Replaces the base layer's passwd/group: adds the nginx user.
    layer.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"
               b"nginx:x:101:101:nginx:/var/cache/nginx:/sbin/nologin\n"
               b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    layer.file("etc/group", b"root:x:0:\nnginx:x:101:nginx\nnogroup:x:65534:\n")
    return layer


HELLO_C = r"""
#include <unistd.h>
#include <string.h>
static const char msg[] =
"\n"
"Hello from Docker!\n"
"(berth fixture: this image stands in for Docker Hub's hello-world.)\n"
"\n"
"To print this, the docker client asked the daemon (here: berthd) to\n"
"pull the \"hello-world\" image, create a container from it with its own\n"
"namespaces and overlay filesystem, and run this program inside it. The\n"
"daemon streamed the program's output back to your terminal.\n"
"\n"
"Next, try a shell in a container:\n"
" $ docker run -it --rm alpine sh\n"
"\n";
int main(void) { return write(1, msg, sizeof msg - 1) == (long)(sizeof msg - 1) ? 0 : 1; }
"""


def hello_layer(workdir):
    src = os.path.join(workdir, "hello.c")
    exe = os.path.join(workdir, "hello")
    with open(src, "w") as f:
        f.write(HELLO_C)
    subprocess.run(["gcc", "-static", "-Os", "-s", "-o", exe, src], check=True)
    layer = Layer("berth fixture: static hello program (gcc -static)")
    layer.host_file(exe, "hello", 0o755)
    return layer


def libtorch_layer():
    """libtorch's CPU libraries (and the two CUDA runtime libraries
    libtorch_cpu links but never calls on a CPU) under /opt/libtorch/lib."""
    layer = Layer("berth fixture: libtorch 2.13.0 CPU libraries from the PyPI torch wheel",
                  gzip_level=1)
    for name in sorted(os.listdir(LIBTORCH_LIB)):
        path = os.path.join(LIBTORCH_LIB, name)
        if name == "libtorch.so":
            continue  # the build-time stub (see scripts/gourmetgram.sh); not needed at run time
        if os.path.islink(path) and not os.readlink(path).startswith("/"):
            layer.symlink(f"{LIBTORCH_IN_IMAGE}/{name}", os.readlink(path))
        else:
            layer.host_file(os.path.realpath(path), f"{LIBTORCH_IN_IMAGE}/{name}", 0o755)
    return layer


def gourmetgram_base(base):
    torch_cpu = os.path.join(LIBTORCH_LIB, "libtorch_cpu.so")
    if not os.path.exists(torch_cpu):
        raise SystemExit(f"{torch_cpu} missing: run scripts/gourmetgram.sh torch libtorch first")
    env = dict(os.environ, LD_LIBRARY_PATH=LIBTORCH_LIB)
    system = glibc_layer([torch_cpu, TURBOJPEG],
                         "berth fixture: glibc, libstdc++, libgcc and libturbojpeg from Debian", env)
    # GourmetGram decodes JPEGs with libjpeg-turbo, as PIL does (ldd lists a
    # library's dependencies, not the library: add it).
    system.host_file(os.path.realpath(TURBOJPEG), TURBOJPEG.lstrip("/"), 0o644)
    return Image(
        [base, system, libtorch_layer()],
        {
            "Env": [PATH_ENV, "LD_LIBRARY_PATH=/opt/libtorch/lib", "LIBTORCH=/opt/libtorch"],
            "Cmd": ["/bin/sh"],
        })


def build_images(workdir):
    base = busybox_layer()
    images = {}
    images["hello-world"] = Image(
        [hello_layer(workdir)], {"Env": [PATH_ENV], "Cmd": ["/hello"]})
    images["alpine"] = Image([base], {"Env": [PATH_ENV], "Cmd": ["/bin/sh"]})
    images["nginx"] = Image(
        [base,
         glibc_layer(["/usr/sbin/nginx"], "berth fixture: glibc and nginx's shared libraries"),
         nginx_layer()],
        {
            "Env": [PATH_ENV, "NGINX_VERSION=1.22.1"],
            "Cmd": ["nginx", "-g", "daemon off;"],
            "ExposedPorts": {"80/tcp": {}},
            "StopSignal": "SIGQUIT",
        })
    images["gourmetgram-base"] = gourmetgram_base(base)
    # A second platform in alpine's index, so that pulls must pick linux/amd64.
    note = Layer("berth fixture: placeholder arm64 variant")
    note.file("etc/berth-fixture-note", b"arm64 placeholder; berth pulls linux/amd64\n")
    images["alpine-arm64"] = Image([note], {"Env": [PATH_ENV], "Cmd": ["/bin/sh"]}, arch="arm64")
    return images


# ---------------------------------------------------------------- registry I/O
class Registry:
    def __init__(self, url):
        self.url = url.rstrip("/")

    def _req(self, method, path, data=None, headers=None):
        req = urllib.request.Request(self.url + path if path.startswith("/") else path,
                                     data=data, method=method, headers=headers or {})
        return urllib.request.urlopen(req, timeout=60)

    def has_blob(self, repo, digest):
        try:
            self._req("HEAD", f"/v2/{repo}/blobs/{digest}")
            return True
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return False
            raise

    def push_blob(self, repo, data):
        digest = sha256(data)
        if self.has_blob(repo, digest):
            return digest
        resp = self._req("POST", f"/v2/{repo}/blobs/uploads/")
        loc = resp.headers["Location"]
        if loc.startswith("/"):
            loc = self.url + loc
        sep = "&" if "?" in loc else "?"
        self._req("PUT", f"{loc}{sep}digest={digest}", data,
                  {"Content-Type": "application/octet-stream"})
        return digest

    def push_manifest(self, repo, ref, body: bytes, media_type):
        self._req("PUT", f"/v2/{repo}/manifests/{ref}", body, {"Content-Type": media_type})
        return sha256(body)

    def get_manifest(self, repo, ref):
        accept = ", ".join([MT_DOCKER_MANIFEST, MT_DOCKER_LIST, MT_OCI_MANIFEST, MT_OCI_INDEX])
        resp = self._req("GET", f"/v2/{repo}/manifests/{ref}", headers={"Accept": accept})
        return resp.headers.get("Content-Type"), json.loads(resp.read())


def push_image(reg, repo, image, oci):
    config, layers = image.blobs(oci)
    for gz, _ in layers:
        reg.push_blob(repo, gz)
    reg.push_blob(repo, config)
    body = json.dumps(manifest_for(config, layers, oci), sort_keys=True).encode()
    mt = MT_OCI_MANIFEST if oci else MT_DOCKER_MANIFEST
    return reg.push_manifest(repo, sha256(body), body, mt), len(body), mt


def push_schema2_tag(reg, repo, tag, image):
    """A plain Docker schema2 manifest under a tag (no index)."""
    config, layers = image.blobs(False)
    for gz, _ in layers:
        reg.push_blob(repo, gz)
    reg.push_blob(repo, config)
    reg.push_manifest(repo, tag, json.dumps(manifest_for(config, layers, False),
                                            sort_keys=True).encode(), MT_DOCKER_MANIFEST)


def push_index(reg, repo, tag, entries, oci):
    body = json.dumps({
        "schemaVersion": 2,
        "mediaType": MT_OCI_INDEX if oci else MT_DOCKER_LIST,
        "manifests": [
            {"mediaType": mt, "digest": d, "size": size,
             "platform": {"architecture": arch, "os": "linux"}}
            for (d, size, mt), arch in entries
        ],
    }, sort_keys=True).encode()
    reg.push_manifest(repo, tag, body, MT_OCI_INDEX if oci else MT_DOCKER_LIST)


def push_all(url):
    reg = Registry(url)
    with tempfile.TemporaryDirectory() as workdir:
        images = build_images(workdir)
    # hello-world: a plain Docker schema2 manifest under the tag.
    push_schema2_tag(reg, *FIXTURES["hello-world"], images["hello-world"])
    # alpine: an OCI index with linux/amd64 and a linux/arm64 placeholder.
    repo, tag = FIXTURES["alpine"]
    amd = push_image(reg, repo, images["alpine"], True)
    arm = push_image(reg, repo, images["alpine-arm64"], True)
    push_index(reg, repo, tag, [(arm, "arm64"), (amd, "amd64")], True)
    # nginx:alpine: a Docker manifest list pointing at a schema2 manifest.
    repo, tag = FIXTURES["nginx"]
    push_index(reg, repo, tag, [(push_image(reg, repo, images["nginx"], False), "amd64")], False)
    # the GourmetGram base: a Docker schema2 manifest under its tag.
    push_schema2_tag(reg, *FIXTURES["gourmetgram-base"], images["gourmetgram-base"])
    print(f"[fixtures] pushed {', '.join(r + ':' + t for r, t in FIXTURES.values())} to {url}")


def check(url):
    """Every fixture's manifest (through any index) and blobs are served."""
    reg = Registry(url)
    ok = True
    for name, (repo, tag) in FIXTURES.items():
        try:
            mt, m = reg.get_manifest(repo, tag)
            if m.get("manifests"):
                entry = next(e for e in m["manifests"] if e["platform"]["architecture"] == "amd64")
                mt, m = reg.get_manifest(repo, entry["digest"])
            for blob in [m["config"]] + m["layers"]:
                if not reg.has_blob(repo, blob["digest"]):
                    raise RuntimeError(f"blob {blob['digest']} missing")
            print(f"[fixtures] {repo}:{tag} ok ({mt}, {len(m['layers'])} layers)")
        except Exception as e:  # report every fixture, then fail
            print(f"[fixtures] {repo}:{tag} MISSING: {e}", file=sys.stderr)
            ok = False
    return ok


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        sys.exit(0 if check(sys.argv[2]) else 1)
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    push_all(sys.argv[1])
    sys.exit(0 if check(sys.argv[1]) else 1)
