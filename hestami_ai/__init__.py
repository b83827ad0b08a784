"""Hestami AI: a Django backend-for-frontend for LibreChat."""
