"""Fax: fax-on-demand from the IVR (the `fax` flow node) and inbound fax to PDF and e-mail."""
