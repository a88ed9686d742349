"""Alerts: rules evaluated from database counts by the leader, transitions stored once, notifications delivered
through channel plugins with retries (see ``engine``)."""
