# ShadowProxy's image: `docker build -t shadowproxy .` from a clone; see docs/deployment.md.
# The build stage may compile (a dependency without a wheel for the platform); the final stage has no compiler,
# only the virtualenv it copies, and runs as an unprivileged user.
ARG PYTHON_VERSION=3.12

FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update && apt-get install -y --no-install-recommends build-essential && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/shadowproxy
COPY . /src
RUN /opt/shadowproxy/bin/pip install /src && /opt/shadowproxy/bin/shadowproxy --help

FROM python:${PYTHON_VERSION}-slim
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin shadowproxy
COPY --from=build /opt/shadowproxy /opt/shadowproxy
# The config is a mounted file (/etc/shadowproxy/shadowproxy.yaml, e.g. a Kubernetes ConfigMap); any setting can
# be given or replaced by a SHADOWPROXY_* variable (SHADOWPROXY_STORE=redis://..., SHADOWPROXY_LOG_FORMAT=json).
ENV PATH=/opt/shadowproxy/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    SHADOWPROXY_HOST=0.0.0.0 \
    SHADOWPROXY_PORT=8765
USER 10001:10001
WORKDIR /tmp
EXPOSE 8765
# SIGTERM drains: /readyz turns 503, requests in flight finish within shutdown_timeout, then the process exits.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('SHADOWPROXY_PORT', '8765') + '/healthz', timeout=2)"]
ENTRYPOINT ["shadowproxy"]
CMD ["run", "--config", "/etc/shadowproxy/shadowproxy.yaml"]
