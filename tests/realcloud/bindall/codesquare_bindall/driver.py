"""Bind every port, as an agent-backed driver would once its agent reported in.

The test cloud runs no Neutron agents, so no stock driver will bind a port and Nova puts every
server with a port into ERROR. This driver claims the first segment offered (flat or VLAN or
anything else) with vif type "ovs" and reports the port ACTIVE, which is all Nova's fake virt
driver needs. It moves no packets; the cloud is for API tests only.
"""

from typing import Any

from neutron_lib import constants
from neutron_lib.api.definitions import portbindings
from neutron_lib.plugins.ml2 import api


class BindAllDriver(api.MechanismDriver):
    def initialize(self) -> None:
        """Nothing to set up: there is no agent to talk to."""

    def bind_port(self, context: Any) -> None:
        for segment in context.segments_to_bind:
            context.set_binding(
                segment[api.ID],
                portbindings.VIF_TYPE_OVS,
                {portbindings.CAP_PORT_FILTER: True},
                status=constants.PORT_STATUS_ACTIVE,
            )
            return
