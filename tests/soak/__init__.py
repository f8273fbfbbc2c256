"""Bounded soak test of the whole service on loopback fakes (`python -m tests.soak`)."""
