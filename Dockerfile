# alertcast: the daemon (`alertcast serve`) on a slim Python base, as a non-root user.
#   docker build -t alertcast .
#   docker run -p 8080:8080 -v alertcast-data:/var/lib/alertcast \
#     -e ALERTCAST_TOKEN=... -v $PWD/office.toml:/etc/alertcast/config.toml:ro alertcast
# Pass every *_env variable the configuration names (`alertcast check-config` lists those
# unset). One container per SQLite volume: a second one on it exits at once (the store's lock).
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY alertcast ./alertcast
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.12-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/alertcast --create-home alertcast
COPY --from=build /install /usr/local
COPY config/example.toml /etc/alertcast/config.toml
ENV ALERTCAST_CONFIG=/etc/alertcast/config.toml \
    ALERTCAST_SERVER__HOST=0.0.0.0 \
    ALERTCAST_STORE__URL=sqlite:////var/lib/alertcast/alertcast.db \
    ALERTCAST_LOGGING__FORMAT=json \
    PYTHONUNBUFFERED=1
USER alertcast
WORKDIR /var/lib/alertcast
VOLUME ["/var/lib/alertcast"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"
STOPSIGNAL SIGTERM
ENTRYPOINT ["alertcast"]
CMD ["serve"]
