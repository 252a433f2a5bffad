"""Edge analytics gateway: OpenPanel-compatible ingestion into a durable local store."""

__version__ = "0.1.0"
