# CPU image of ClawCrane. Installs exactly as the README does (`make setup`: a .venv with the
# package and torch==2.14.1 / torchvision==0.29.1), then runs the quickstart by default.
FROM python:3.11-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends make \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/clawcrane
COPY pyproject.toml Makefile README.md ./
COPY clawcrane ./clawcrane
RUN make setup

ENV PATH=/opt/clawcrane/.venv/bin:$PATH
VOLUME ["/out"]
ENTRYPOINT ["clawcrane"]
CMD ["quickstart", "--out", "/out"]
