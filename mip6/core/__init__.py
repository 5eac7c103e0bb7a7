"""Sans-I/O machinery shared by the roles: return routability, binding cache, timers, pipeline.

Nothing here reads a clock, draws randomness of its own, or touches a socket (ARCHITECTURE 2).
"""
