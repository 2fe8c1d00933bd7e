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
ENTRYPOINT ["bulkupdate"]
CMD ["--help"]
