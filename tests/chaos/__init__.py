"""The crash-and-fault suite: the real bot as child processes, killed, restarted and faulted while members submit
jobs; at the end every submission is accounted for. `python -m tests.chaos` (or `make chaos`) runs it; see
docs/reliability.md for what it proves.
"""
