"""Operations: /metrics (Prometheus), /readyz, and the request-latency middleware."""
