# One image for the three Python services of the stack (llmsim, gateway, receiver); docker-compose.yml picks
# the service with its command (`python -m stack.llmsim`, `python -m stack.gateway`, `python -m stack.receiver`).
# Build context: the repository root (see .dockerignore).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LLMOBS_RUN_DIR=/data

# /app is the working directory on purpose: `python -m stack.<service>` then imports /app/stack, so
# stack/paths.py finds the repository layout it expects (/app/docs/runbooks for the receiver) and the
# services read the very same stack/topology.yaml and stack/catalog.yaml as the embedded stack.
WORKDIR /app

COPY pyproject.toml ./
COPY stack ./stack
RUN pip install . \
    && rm -rf build ./*.egg-info
COPY docs/runbooks ./docs/runbooks

# Non-root user; /data is where the named volume of each service is mounted (LLMOBS_RUN_DIR).
# A named volume mounted on an existing folder takes over that folder's owner, so the user can write it.
RUN useradd --system --uid 10001 --no-create-home --home-dir /app --shell /usr/sbin/nologin llmobs \
    && mkdir -p /data \
    && chown llmobs:llmobs /data
USER llmobs

CMD ["python", "-m", "stack.gateway"]
