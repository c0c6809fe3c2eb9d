"""The cluster side of ``up``/``down``: discovery, the plan, apply/restore, journal, session."""
