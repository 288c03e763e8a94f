"""incident: emergency incident coordination for railway passenger-service centres."""

__version__ = "0.1.0"
