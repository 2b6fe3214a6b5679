"""What runs inside Modelship's pods: model server, router, initializer, trainer."""

__version__ = "0.1.0"
