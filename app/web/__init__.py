"""The HTTP edge shared by every feature: errors as JSON, request bodies, who is asking
(a panel session or the bearer token), and the health page. Features keep their own routes
beside them (app/routing/http.py, app/calls/http.py, ...); the panel's pages are in app/panel."""
