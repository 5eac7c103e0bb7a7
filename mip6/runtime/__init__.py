"""Drivers at the edge: the in-memory network on a virtual clock (tests, labnet's simulator);
later the asyncio daemon, TUN and UDP links, and the pcap tap."""
