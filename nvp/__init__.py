"""nvp: Neural Voice Puppetry (Thies et al., ECCV 2020) with PyTorch Lightning."""

__version__ = "0.1.0"
