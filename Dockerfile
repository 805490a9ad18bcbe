# One image for every role: TYPE=master|mapper|reducer picks the actor (see deploy/).
# The base is pinned by tag; pin it by digest too (python:3.11-slim-bookworm@sha256:...) for reproducible builds.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

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
COPY pyproject.toml setup.cfg setup.py README.md ./
COPY actors ./actors
# The extensions are optional for pip (machines without a compiler fall back to Python); here they must be built.
RUN /opt/venv/bin/pip install --no-cache-dir . \
    && /opt/venv/bin/python -c "import actors.jobs._wordcount, actors.jobs._resultjson" \
    && /opt/venv/bin/python -m compileall -q /opt/venv

# --- runtime: the slim base, the virtualenv and a non-root user; no compilers, no sources, no pip cache ---
FROM ${PYTHON_IMAGE} AS runtime
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
