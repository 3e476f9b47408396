"""Edge defence: sources that guess SIP passwords are banned inside Asterisk."""
