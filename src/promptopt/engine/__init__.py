"""The optimization engine: never prints, reports progress through an Events object."""
