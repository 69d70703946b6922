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
RUN useradd --create-home --uid 1000 sweep
USER sweep
WORKDIR /home/sweep

CMD ["sweep", "worker", "--help"]
