"""The agent panel: sign-in, sessions, pages, live updates (see app/panel/http.py)."""
