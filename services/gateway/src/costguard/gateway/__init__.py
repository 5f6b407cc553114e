"""The gateway: admin REST API and dashboard over Starlette."""
