# One image for both roles; docker-compose.yml picks the role by its command.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . .
RUN make install && ln -s /app/.venv/bin/tandem /usr/local/bin/tandem
EXPOSE 50051 50052
ENTRYPOINT ["tandem"]
