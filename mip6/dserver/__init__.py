"""The distributed server of the seeds (DSERVER.md): a group of member daemons that every client
sees as one IPv6 host, the contact address. Sans-I/O, like the roles.

The member engine (:mod:`mip6.dserver.member`) composes these:

- :mod:`mip6.dserver.messages`: the handoff protocol's member-channel messages;
- :mod:`mip6.dserver.channel`: the member channel's security layer (a handshake proving the
  group key, then AES-256-GCM frames each carrying one message);
- :mod:`mip6.dserver.connection`: that channel over a member host's own TCP connections;
- :mod:`mip6.dserver.handoff`: the donor's and acceptor's handoff state machines;
- :mod:`mip6.dserver.policy`: distribution policies and the group view they choose from;
- :mod:`mip6.dserver.relay`: the contact node's HoTI/HoT relay table;
- :mod:`mip6.dserver.udp`: UDP services on the contact address and their clients' flows, moved
  by traffic switching.
"""
