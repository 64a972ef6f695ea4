"""pyro-objects: object-centric image generation with factored depths, locations
and appearances (Anciukevičius, Lampert & Henderson, 2020), in Pyro."""
from .config import CONFIGS, Config, quick
from .errors import InputError
from .guide import Guide
from .model import Model

__version__ = "0.1.0"
__all__ = ["CONFIGS", "Config", "Guide", "InputError", "Model", "quick"]
