# syntax=docker/dockerfile:1
#
# foreman's container image (see README, "Deploying").
#
#   docker build -t foreman .                             # foreman, git and CA certificates
#   docker build -t foreman --build-arg AGENT_CLIS=true . # plus Node.js, Claude Code and Codex
#   docker run -p 8080:8080 -v foreman-data:/data foreman
#
# The build stage compiles with the official Rust image; the runtime stage is Debian slim
# (the same Debian release, so the binary's C library matches). foreman runs as the
# unprivileged user `foreman`; the entrypoint starts as root only to hand a freshly mounted
# /data volume to that user (Fly.io volumes are mounted owned by root) and then drops root.
# Agents run in bubblewrap sandboxes, which need user namespaces: Docker's default seccomp
# profile refuses them (run with `--security-opt seccomp=unconfined`, or a profile that
# allows unshare/clone of user namespaces); Fly.io machines allow them.

ARG RUST_VERSION=1.95
ARG DEBIAN=bookworm
ARG NODE_VERSION=22
# true: install Node.js and the agent CLIs (@anthropic-ai/claude-code, @openai/codex).
ARG AGENT_CLIS=false

FROM rust:${RUST_VERSION}-slim-${DEBIAN} AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY .cargo .cargo
COPY src src
COPY benches benches
COPY migrations migrations
COPY prompts prompts
COPY app-manifest app-manifest
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin foreman \
    && cp target/release/foreman /usr/local/bin/foreman

# The runtime base without the agent CLIs.
FROM debian:${DEBIAN}-slim AS runtime-false

# The runtime base with Node.js and the agent CLIs, versions as the test suite pins them.
FROM node:${NODE_VERSION}-${DEBIAN}-slim AS runtime-true
ARG CLAUDE_CODE_VERSION=2.1.197
ARG CODEX_VERSION=0.171.0
RUN npm install --global --no-audit --no-fund \
        "@anthropic-ai/claude-code@${CLAUDE_CODE_VERSION}" "@openai/codex@${CODEX_VERSION}" \
    && npm cache clean --force \
    && claude --version && codex --version

FROM runtime-${AGENT_CLIS} AS runtime
RUN apt-get update \
    && apt-get install --yes --no-install-recommends bubblewrap ca-certificates git tini \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --create-home --home-dir /home/foreman \
        --shell /usr/sbin/nologin foreman \
    && mkdir -p /data/work \
    && chown -R foreman:foreman /data
COPY --from=build /usr/local/bin/foreman /usr/local/bin/foreman
COPY docker/entrypoint.sh /usr/local/bin/foreman-entrypoint
ENV FOREMAN_LISTEN=0.0.0.0:8080 \
    DATABASE_URL=sqlite:///data/foreman.db \
    FOREMAN_WORK_ROOT=/data/work \
    FOREMAN_APP_FILE=/data/github-app.json \
    HOME=/home/foreman
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
ENTRYPOINT ["tini", "--", "foreman-entrypoint"]
CMD ["serve"]
