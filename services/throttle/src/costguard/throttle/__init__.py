"""The throttle service."""
