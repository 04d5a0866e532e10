"""The package version, on the lowest floor so that records and the CLI read it without importing the package root."""

__version__ = "0.1.0"
