"""The distributed server of the seeds (DSERVER.md): a group of member daemons that every client
sees as one IPv6 host, the contact address. Sans-I/O, like the roles.

Here so far: :mod:`mip6.dserver.messages`, the handoff protocol's member-channel messages, and
:mod:`mip6.dserver.channel`, the member channel's security layer (a handshake proving the group
key, then AES-256-GCM frames each carrying one message).
"""
