# bulkupdate: slim runtime image, no test extras, non-root, exec-form entrypoint (SIGTERM reaches Python).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bulkupdate ./bulkupdate
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
    && useradd --create-home --uid 10001 bulkupdate \
    && mkdir -p /checkpoints && chown bulkupdate /checkpoints
USER bulkupdate
WORKDIR /home/bulkupdate
VOLUME ["/checkpoints"]
# Configured by environment (BULKUPDATE_<SETTING>; flags win): the derived checkpoint and failures
# file go to the volume, logs are JSON lines. Mount the input anywhere, read-only is fine.
ENV BULKUPDATE_STATE_DIR=/checkpoints \
    BULKUPDATE_LOG_FORMAT=json
ENTRYPOINT ["bulkupdate"]
CMD ["--help"]
