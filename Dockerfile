# mailbot image: the daemon and the agents' web app run from the same image.
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY mailbot ./mailbot
RUN pip install . && useradd --system --home /var/lib/mailbot --create-home mailbot
COPY macros ./macros
COPY config ./config
USER mailbot
ENV MAILBOT_CONFIG=/etc/mailbot/mailbot.yaml
ENTRYPOINT ["mailbot"]
CMD ["run"]
