"""Sans-I/O PostgreSQL wire protocol (v3.0 and v3.2): framing, message parsers and builders.

Nothing here touches a socket or an event loop: callers feed bytes in and get messages (or bytes) out.
"""
