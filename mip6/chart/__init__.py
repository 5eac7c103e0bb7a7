"""Message sequence charts from packet captures (``mip6 decode --chart``, ``labnet chart``).

One lifeline per node, time downwards, every Mobile IPv6 message an arrow with its label, the
distributed server's member-channel messages named (decrypted when the group key is given),
and data packets collapsed into runs. Sans-I/O from packets to the chart; the renderers and the
capture reading are at the edges:

- :mod:`mip6.chart.merge`: captures (one per link, or one vantage point) merged by time; the
  same packet seen on two links becomes one hop from the first link's node to the last's.
- :mod:`mip6.chart.names`: addresses to lifeline names (a topology's, or the addresses).
- :mod:`mip6.chart.label`: what a packet is, in a few words, and whether it is data.
- :mod:`mip6.chart.channel`: the member channel's TCP streams followed: hello, confirm and
  frames found; frames decrypted and their messages parsed when the group key is known.
- :mod:`mip6.chart.heartbeat`: the membership heartbeat datagrams named (opened with the key).
- :mod:`mip6.chart.model`: hops to the chart: messages, and runs of data between signalling.
- :mod:`mip6.chart.text` and :mod:`mip6.chart.svg`: the two renderings.
- :mod:`mip6.chart.read`: the I/O edge: capture files in, a chart out; a member's
  configuration to its group key.

``labnet.chart`` names the lifelines after a lab topology's nodes and charts simulated runs.
"""
