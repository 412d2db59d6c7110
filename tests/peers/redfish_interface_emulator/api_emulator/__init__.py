# required to be a module
from .version import __version__
