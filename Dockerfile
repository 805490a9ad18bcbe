# One image for every role: TYPE=master|mapper|reducer picks the actor (see deploy/).
# Reproducible: the base is pinned by digest and every Python dependency by version and hash (requirements.lock).
# The digest is python:3.11-slim-bookworm's multi-platform index as the official images publish it (their
# repo-info record of the tag, built 2026-08-25: Python 3.11.16). To move it, take the tag's current digest
# (`docker buildx imagetools inspect python:3.11-slim-bookworm`, or `crane digest` / `skopeo inspect`), put it
# here, rebuild and run the tests; tests/test_deploy_image.py checks a digest is there.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:0bee7276f83efd4a1ee05bbbf4281d95ed28e079220a9457f25a93e3f1e3c31b

# --- build: a virtualenv with the package and its dependencies (wheels), and the native word-count kernel ---
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# A C compiler for actors/jobs/_wordcount.c and _resultjson.c (the image already has Python's headers). This
# stage is thrown away, so the toolchain never reaches the runtime image; Debian's stable release fixes its
# version, hence no pins.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
WORKDIR /src
# The dependencies first (their layer outlives source changes), each file checked against its hash in the lock
# (scripts/lock.sh writes it from setup.cfg; tests/test_lock.py checks they agree): an index that serves other
# bytes fails the build. The lock also pins setuptools, the build backend used below, and the s3 extra (obstore).
COPY requirements.lock ./
RUN /opt/venv/bin/pip install --no-cache-dir --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml setup.cfg setup.py README.md ./
COPY actors ./actors
# --no-deps: every dependency came from the lock above; --no-build-isolation: build with the locked setuptools
# rather than whatever an isolated build would fetch; pip check: the lock was complete.
# The extensions are optional for pip (machines without a compiler fall back to Python); here they must be built.
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps --no-build-isolation . \
    && /opt/venv/bin/pip check \
    && /opt/venv/bin/python -c "import actors.jobs._wordcount, actors.jobs._resultjson, obstore" \
    && /opt/venv/bin/python -m compileall -q /opt/venv

# --- runtime: the slim base, the virtualenv and a non-root user; no compilers, no sources, no pip cache ---
FROM ${PYTHON_IMAGE} AS runtime
ARG PYTHON_IMAGE
# VERSION follows actors/__init__.py (a test checks); REVISION and CREATED come from the build, e.g.
#   --build-arg REVISION="$(git rev-parse HEAD)" --build-arg CREATED="$(git log -1 --format=%cI)"
# (the commit's own time, not the build's, so two builds of one commit label the same).
ARG VERSION=0.1.0
ARG REVISION=""
ARG CREATED=""
LABEL org.opencontainers.image.title="mapreduce-actors" \
      org.opencontainers.image.description="MapReduce on asyncio actors: master, mappers and reducers over aiohttp" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"
RUN groupadd --gid 10001 actors \
    && useradd --uid 10001 --gid actors --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin actors \
    && mkdir -p /var/spool/mapreduce \
    && chown actors:actors /var/spool/mapreduce
COPY --from=build /opt/venv /opt/venv
# Bytecode was compiled at build time; the root filesystem is read-only in the pods.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MR_SPOOL_DIR=/var/spool/mapreduce
USER 10001:10001
EXPOSE 8080 8081 8082
# Exec form: python is PID 1 and receives SIGTERM itself. The actor installs its own SIGTERM handler (PID 1
# gets no default signal actions), turns /readyz to 503, drains in-flight requests for MR_TIMEOUT_DRAIN
# seconds and exits 0. It starts no child processes, so no init (tini) is needed to reap zombies.
ENTRYPOINT ["python", "-m", "actors", "serve"]
