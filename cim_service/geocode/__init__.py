"""Geocoding over the standard addresses (一标): forward, batch, reverse, and an address's linked records."""
