"""Pydantic models of the AIDP API bodies: ``runs`` (read side) and ``jobs`` (the job spec we write).

Import from the submodules; this package does not re-export, so importing one side does not
pay for the other.
"""
