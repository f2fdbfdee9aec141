# newsarchive: the scheduler daemon by default (`newsarchive run`), or any other command:
#   docker run IMAGE crawl --all          cron mode: every site once, exit 1 if any failed
#   docker run IMAGE status --check       what ran, what is stale
# BASE lets a build use a local Debian bookworm image where no registry is reachable.
ARG BASE=debian:bookworm-slim
FROM ${BASE}

ARG DEBIAN_FRONTEND=noninteractive
# Python from Debian. Chromium renders the pages that need a browser (Playwright drives the
# system Chromium; its Node driver needs libatomic1). tini is PID 1: it forwards SIGTERM to the
# daemon and reaps browser processes a crawl leaves behind.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      python3 python3-venv ca-certificates chromium libatomic1 tini \
 && rm -rf /var/lib/apt/lists/*

RUN useradd --system --create-home --home-dir /var/lib/newsarchive --shell /usr/sbin/nologin \
      --uid 10001 --user-group newsarchive
WORKDIR /opt/newsarchive
COPY pyproject.toml README.md scrapy.cfg constraints.txt ./
COPY crawler ./crawler
COPY spiders ./spiders
COPY settings ./settings
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir -c constraints.txt ".[postgres]" \
 && /opt/venv/bin/newsarchive --help >/dev/null

USER 10001:10001
# With an s3:// store the spool holds open WARCs and any backlog an outage left: keep it on the
# volume so it outlives the container (set AWS_* credentials at run time, never here).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    NEWSARCHIVE_STORE=/var/lib/newsarchive/archive \
    ARCHIVE_SPOOL_DIR=/var/lib/newsarchive/spool
VOLUME ["/var/lib/newsarchive"]
# Unhealthy when a site has had no new article for longer than its threshold.
HEALTHCHECK --interval=5m --timeout=60s --start-period=15m --retries=1 \
  CMD ["newsarchive", "status", "--check", "--quiet"]
ENTRYPOINT ["/usr/bin/tini", "--", "newsarchive"]
CMD ["run"]
