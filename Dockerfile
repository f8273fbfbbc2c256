# liqradar: one process (bots, scheduler, web page). Build: docker build -t liqradar .
# Demo without tokens or network: docker run --rm -p 8080:8080 liqradar run --replay data/demo --speed 600

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot bot
COPY engine engine
COPY market market
COPY storage storage
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PTB_TIMEDELTA=true \
    MALLOC_ARENA_MAX=2 \
    MPLCONFIGDIR=/tmp/matplotlib \
    LIQRADAR_WEB_HOST=0.0.0.0 \
    LIQRADAR_WEB_PORT=8080 \
    LIQRADAR_DATABASE_URL=sqlite+aiosqlite:////data/liqradar.db \
    LIQRADAR_DELIVERY_JOURNAL=/data/liqradar-sends.jsonl
RUN useradd --system --uid 10001 --home-dir /app liqradar \
    && mkdir -p /data /app \
    && chown liqradar /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
WORKDIR /app
COPY data/demo data/demo
USER liqradar
VOLUME /data
EXPOSE 8080
# /healthz answers 503 when every tracked symbol's data is stale.
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
# SIGTERM: finish in-flight deliveries, close sessions (LIQRADAR_SHUTDOWN_TIMEOUT_S).
STOPSIGNAL SIGTERM
ENTRYPOINT ["liqradar"]
CMD ["run"]
