"""The Discord-free core: job submission, tracking and the poller."""
