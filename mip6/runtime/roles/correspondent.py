"""The correspondent node role (RFC 3775 9):
:class:`~mip6.roles.correspondent_node.CorrespondentNode`."""

from __future__ import annotations

from typing import Any

from mip6.core.config import CorrespondentConfig
from mip6.roles.correspondent_node import CorrespondentNode
from mip6.runtime.kernel import CorrespondentRoutes
from mip6.runtime.roles.base import BuildContext, LabNode, Role

OPTIONS = {
    "binding_cache_size": "integer",
    "nonce_interval": "number",
    "constants": "constants",
    "brr_lead": "number",
    "address": "address",  # the node's own (host mode; the kernel's behind a shim)
}


def config(options: dict[str, Any]) -> CorrespondentConfig:
    """The engine's configuration from the block's options (``address`` is the node's, not
    the engine's: a correspondent answers for whatever reaches it)."""
    return CorrespondentConfig(**{k: v for k, v in options.items() if k != "address"})


def build(options: dict[str, Any], context: BuildContext) -> CorrespondentNode:
    return CorrespondentNode(config=config(options), rng=context.rng)


def lab_options(node: LabNode) -> dict[str, Any]:
    return {"address": str(node.addresses[0])}


ROLE = Role(
    name="correspondent",
    options=OPTIONS,
    required=(),
    host_address="address",
    build=build,
    lab_options=lab_options,
    network_driver=CorrespondentRoutes,
)
