"""The three RFC 3775 roles as sans-I/O engines: correspondent node, home agent, mobile node."""
