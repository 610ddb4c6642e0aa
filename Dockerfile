# One image for every role: the bus server, device models, clients and benchmarks.
FROM python:3.11-slim
WORKDIR /opt/mmiobus
COPY pyproject.toml README.md ./
COPY memory memory
COPY machine machine
COPY server server
COPY client client
COPY devices devices
COPY cli cli
COPY cpu cpu
COPY peers peers
COPY qemu qemu
COPY rtl rtl
COPY testbench testbench
COPY proto proto
COPY bench bench
COPY deploy deploy
# What a bench's peers need (`mmiobus compose` sets them): Debian packages such as QEMU or
# iverilog, and mmiobus extras such as rtl.
ARG DEBIAN_PACKAGES=""
ARG EXTRAS=""
RUN if [ -n "$DEBIAN_PACKAGES" ]; then \
        apt-get update && apt-get install -y --no-install-recommends $DEBIAN_PACKAGES \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && pip install --no-cache-dir ".${EXTRAS:+[$EXTRAS]}" \
    && useradd --system --uid 10001 mmiobus
USER mmiobus
EXPOSE 7170
ENTRYPOINT ["mmiobus"]
CMD ["serve", "--listen", "0.0.0.0:7170", "--log-format", "json"]
