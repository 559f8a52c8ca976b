# Threadbridge: one image for `threadbridge run` (Slack edge + workers) and `threadbridge worker`.
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.12-slim
ENV PYTHONUNBUFFERED=1 PORT=3000
COPY --from=build /install /usr/local
RUN useradd --create-home --uid 10001 threadbridge
USER threadbridge
WORKDIR /home/threadbridge
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import os,urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\",\"3000\")}/healthz', timeout=2)" || exit 1
# SIGTERM lets in-flight turns finish (THREADBRIDGE_SHUTDOWN_GRACE_SECONDS); keep stop timeouts above it.
STOPSIGNAL SIGTERM
ENTRYPOINT ["threadbridge"]
CMD ["run"]
