"""Pytest fixtures for the fake Discord server (in-process, on a free loopback port)."""
