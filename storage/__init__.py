"""Redis: connections, the embedded single-machine server, job records and their indexes."""
