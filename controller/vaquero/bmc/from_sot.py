"""A SoT host's BMC as an :class:`Endpoint`: its address from the host, its login from the site's
credential, the password read from its reference at the moment of use (never kept in the SoT)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vaquero.bmc.values import Endpoint, Secret
from vaquero.secretref import resolve_secret

if TYPE_CHECKING:
    from vaquero.sot.loader import SoT
    from vaquero.sot.models import Cluster, Host


def sot_endpoint(sot: SoT, cluster: Cluster, host: Host) -> Endpoint:
    """The endpoint of ``host``'s BMC; ValueError when it has none, SecretMissing when its password
    reference does not resolve (both messages name references, never a value)."""
    if host.bmc is None:
        raise ValueError(f"host {host.name} has no BMC in the SoT")
    cred = sot.sites[cluster.site].credentials[host.bmc.credential]
    password = resolve_secret(env=cred.password.env, file=cred.password.file)
    return Endpoint(
        kind=host.bmc.type,
        address=host.bmc.address,
        port=host.bmc.port,
        username=cred.username,
        password=Secret(password),
        host=host.name,
        verify=not host.bmc.insecure,
        ca_file=host.bmc.ca_file,
        system_id=host.bmc.system,
        system_uuid=host.uuid,
    )
