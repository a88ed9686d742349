"""One process's housekeeping: its roles and loops, heartbeats, leadership, maintenance, retention."""
