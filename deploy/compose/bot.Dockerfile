# A paper bot image: ensemble-otel with the demo extra (backtesting.py's bundled market
# data), running `ensemble-otel demo`. Build context: the repository root.
#
#   docker build -f deploy/compose/bot.Dockerfile -t ensemble-bot .
#
# Your own bot: install it into the same image (or add ensemble-otel to your image) and
# run it under `opentelemetry-instrument` or call ensemble_otel.configure() in it.

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY ensemble_otel/ ensemble_otel/
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[demo]'

FROM python:3.11-slim-bookworm
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels 'ensemble-otel[demo]' \
 && rm -rf /wheels \
 && useradd --system --uid 10001 --home-dir /data bot \
 && mkdir -p /data \
 && chown bot /data
USER bot
WORKDIR /data
ENV PAPER_TRADING_ROOT=/data \
    PYTHONUNBUFFERED=1
VOLUME ["/data"]
ENTRYPOINT ["ensemble-otel"]
CMD ["demo"]
