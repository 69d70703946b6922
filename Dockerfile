# The sweep worker image: the project installed with the README's own set-up command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY sweep ./sweep
COPY models ./models
COPY data ./data
RUN python3 -m venv .venv && .venv/bin/pip install -e .
ENV PATH=/app/.venv/bin:$PATH

# A fixed uid: Kubernetes' runAsNonRoot checks a number (deploy/kubernetes runs it as 1000).
# /artifacts: the compose file's shared artifact volume, which takes this folder's owner when it is first created.
RUN useradd --create-home --uid 1000 sweep && mkdir /artifacts && chown sweep /artifacts
USER sweep
WORKDIR /home/sweep

CMD ["sweep", "worker", "--help"]
