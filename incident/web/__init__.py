"""The HTTP edge: JSON API, console and public pages."""
