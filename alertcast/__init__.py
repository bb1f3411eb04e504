"""alertcast: one structured incident, every platform's format, every delivery tracked."""

__version__ = "0.1.0"
