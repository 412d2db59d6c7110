"""The source of truth: models, loading with file:line errors, validation, git sources."""

from .errors import SoTError, SoTInvalid, SourceError
from .loader import SoT, empty_sot, load, load_spec
from .models import API_VERSION, Cluster, Hook, Host, Profile, Site

__all__ = [
    "API_VERSION",
    "Cluster",
    "Hook",
    "Host",
    "Profile",
    "Site",
    "SoT",
    "SoTError",
    "SoTInvalid",
    "SourceError",
    "empty_sot",
    "load",
    "load_spec",
]
