"""Experts outside the center: the directory's live state, offers with a preview, accept or reject
(app/domain/experts.py holds the rules; app/calls/conversation.py carries an ask out on the call)."""
