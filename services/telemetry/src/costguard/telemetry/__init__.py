"""The telemetry service: ingests job, LLM and cost events into Postgres."""
