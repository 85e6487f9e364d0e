"""The ``incibot`` command line."""
