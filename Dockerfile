# newsarchive container (first version; the operations issue adds Chromium, a HEALTHCHECK and the
# daemon as default command).
ARG BASE=debian:bookworm-slim
FROM ${BASE}

RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*

RUN useradd --system --create-home --home-dir /var/lib/newsarchive newsarchive
WORKDIR /opt/newsarchive
COPY pyproject.toml README.md scrapy.cfg ./
COPY crawler ./crawler
COPY spiders ./spiders
COPY settings ./settings
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir . \
 && /opt/venv/bin/newsarchive --help >/dev/null

USER newsarchive
# With an s3:// store the spool holds open WARCs and any backlog an outage left: keep it on the
# volume so it outlives the container (set AWS_* credentials at run time, never here).
ENV PATH=/opt/venv/bin:$PATH \
    NEWSARCHIVE_STORE=/var/lib/newsarchive/archive \
    ARCHIVE_SPOOL_DIR=/var/lib/newsarchive/spool
VOLUME ["/var/lib/newsarchive"]
ENTRYPOINT ["newsarchive"]
CMD ["crawl", "--all"]
