"""Handlers grouped by feature; bot/app.py wires them."""
