"""slr: continuous sign language recognition from MediaPipe Holistic landmarks (no Ray inside)."""

__version__ = "0.1.0"
