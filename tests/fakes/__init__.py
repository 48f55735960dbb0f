"""Fakes of the outside world, used by the end-to-end tests and the crash scripts."""
