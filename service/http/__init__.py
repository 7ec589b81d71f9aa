"""HTTP beside gRPC: the OpenAI embeddings API, KServe V2 REST and the task API in JSON."""
