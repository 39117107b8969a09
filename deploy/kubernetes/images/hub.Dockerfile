# berth-hub: the classroom's front door (deploy/kubernetes/hub.yaml). From
# the repository root, after
#   cargo build --release -p berth-classroom --bin berth-hub
#   trunk build --release
# run
#   docker build -f deploy/kubernetes/images/hub.Dockerfile -t REGISTRY/berth-hub:0.1.0 .
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY target/release/berth-hub /usr/local/bin/berth-hub
COPY dist /usr/share/berth/dist
# The Deployment runs it as 65532 with a read-only root; its state is an emptyDir.
USER 65532:65532
EXPOSE 8090
ENTRYPOINT ["/usr/local/bin/berth-hub"]
