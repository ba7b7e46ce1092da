# The Stratum image: one image for every role (`stratum api | worker | batch | generate`),
# chosen by the command; configuration comes only from STRATUM_* environment variables.
#
#   docker build -t stratum .
#   docker run --rm -e STRATUM_KAFKA__URL=kafka:9092 -e STRATUM_CLICKHOUSE__URL=http://... \
#     -e STRATUM_API__ADMIN_TOKEN=... -e STRATUM_API__INGEST_TOKEN=... stratum worker
#
# Every dependency ships as a manylinux wheel, so the slim image needs no compiler.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed, unprivileged user; /var/lib/stratum/archive exists in the image and belongs
# to it, so a named volume mounted there starts out writable by that user.
RUN groupadd --system --gid 10001 stratum \
 && useradd --system --uid 10001 --gid stratum --home-dir /home/stratum --create-home \
    --shell /usr/sbin/nologin stratum \
 && mkdir -p /var/lib/stratum/archive \
 && chown -R stratum:stratum /var/lib/stratum

WORKDIR /src
COPY pyproject.toml README.md ./
COPY stratum ./stratum
COPY ingest ./ingest
COPY speed_layer ./speed_layer
COPY batch_layer ./batch_layer
COPY serving ./serving
COPY dashboard ./dashboard
RUN pip install . && rm -rf /src

USER stratum
WORKDIR /var/lib/stratum
# Production by default: a plain `docker run` refuses to start until the tokens are set
# (24+ characters each), instead of serving the development token on 0.0.0.0.
ENV STRATUM_ENVIRONMENT=production \
    STRATUM_DATA_DIR=/var/lib/stratum \
    STRATUM_API__HOST=0.0.0.0 \
    STRATUM_API__PORT=8000
EXPOSE 8000

ENTRYPOINT ["stratum"]
CMD ["api"]
