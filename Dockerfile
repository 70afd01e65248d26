# PCM Lab service image: the API (`pcm api`) and the training workers (`pcm worker`).
#
#   docker build -t pcm-lab .                       # then see docker-compose.yml
#
# torch: `pip install torch==2.13.0` from PyPI gives the default Linux build. A GPU host whose
# driver needs another CUDA build installs that one instead, e.g.
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126 -t pcm-lab .
# (and a CPU-only machine can use https://download.pytorch.org/whl/cpu for a much smaller image).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PCM_DATA_DIR=/data

WORKDIR /app
ARG TORCH_INDEX_URL=
RUN pip install ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} torch==2.13.0

# The dependencies, in a layer that only changes with pyproject.toml: its `dependencies` and the
# `service` extra, read from the file alone (the torch installed above satisfies its pin).
COPY pyproject.toml ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + p['optional-dependencies']['service']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt && rm /tmp/requirements.txt

# Then the source, installed as a plain (non-editable) package: presets and dashboard files are
# package data, so an edit here reinstalls only pcm-lab itself.
COPY . /app/src
RUN pip install --no-deps /app/src && rm -rf /app/src

RUN useradd --create-home --uid 1000 pcm && mkdir -p /data && chown pcm /data
USER pcm
VOLUME /data
EXPOSE 8000

# off loopback the API requires login tokens (PCM_AUTH=auto); set PCM_ADMIN_PASSWORD for the admin
CMD ["pcm", "api", "--host", "0.0.0.0", "--port", "8000"]
