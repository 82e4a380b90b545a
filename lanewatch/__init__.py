"""lanewatch: verify that gray traffic stays gray, end to end."""

__version__ = "0.1.0"
