"""The rollup service."""
