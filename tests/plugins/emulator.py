"""Pytest fixtures for the RunPod emulator (in-process, on a free loopback port)."""
