"""Routing: the pilot library and how it is built, the pilot router, and the fusion of ranked lists."""
