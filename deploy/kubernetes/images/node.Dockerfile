# berth-node: a learner's node1 on Kubernetes (the pod the kubernetes spawner
# makes, deploy/kubernetes/learner-pod.yaml): berthd, the page, the tools the
# lab types on node1, and the lab's home with the GourmetGram build context.
# From the repository root, after
#   cargo build --release -p berth-backend --bin berthd
#   trunk build --release
#   scripts/gourmetgram.sh build
# run
#   docker build -f deploy/kubernetes/images/node.Dockerfile -t REGISTRY/berth-node:0.1.0 .
# berthd is built on Debian 12 (glibc 2.36): the base is the same Debian.
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      iproute2 iptables iputils-ping traceroute procps psmisc util-linux \
      curl ca-certificates jq vim-tiny nano less bash docker.io \
 && rm -rf /var/lib/apt/lists/*
# Only the docker CLI of docker.io is used: the pod runs berthd, never dockerd.
COPY target/release/berthd /usr/local/bin/berthd
COPY dist /usr/share/berth/dist
# The learner's ~ (berthd --lab-home /root): `docker build -t gourmetgram-app:0.0.1 gourmetgram`.
COPY gourmetgram/Dockerfile gourmetgram/.dockerignore gourmetgram/Cargo.toml gourmetgram/Cargo.lock gourmetgram/food11.pth /root/gourmetgram/
COPY gourmetgram/bin /root/gourmetgram/bin
COPY gourmetgram/src /root/gourmetgram/src
COPY gourmetgram/static /root/gourmetgram/static
COPY gourmetgram/templates /root/gourmetgram/templates
RUN mkdir -p /root/data/web /var/lib/berth /run/berth
WORKDIR /root
EXPOSE 8080
# The pod's command waits for the token file, then execs berthd with the
# spawner's flags; run by hand, this starts berthd as the lab does.
ENTRYPOINT ["/usr/local/bin/berthd"]
